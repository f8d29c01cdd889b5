/* Training logs in TensorBoard's event-file format, written by ASG itself
 * (no TensorFlow, no protobuf library): `tensorboard --logdir DIR` shows
 * them.
 *
 *   asg_tblog *w = asg_tblog_open("runs/mlp");
 *   for (step ...) { ...; asg_tblog_scalar(w, "train/loss", step, loss); }
 *   asg_tblog_variables(w, train_program, step);   // parameter histograms
 *   asg_tblog_close(w);
 *
 * A writer owns one new file, DIR/events.out.tfevents.<unix time>.<host>.
 * <pid>.<n> (n makes the name unique: writers opened in the same second
 * by one process get 0, 1, ...). The file is a sequence of records, each
 * [u64 length][u32 masked CRC-32C of the length][data][u32 masked CRC-32C
 * of the data] (little endian; masked = ((crc >> 15) | (crc << 17)) +
 * 0xa282ead8), and each record's data a tensorboard.Event protobuf: the
 * first carries file_version "brain.Event:2", the others one
 * Summary.Value (simple_value or histo) with the wall time and the step.
 *
 * Data reaches the file when asg_tblog_flush or asg_tblog_close is called,
 * when at least 10 seconds have passed since the last flush (checked at
 * each record: a live `tensorboard` sees a running job), and whenever the
 * stdio buffer fills. Errors (a folder that cannot be made, a full disk)
 * come back as asg_status with a message naming the file; after a failed
 * write every later call on the writer fails with the same status, since
 * the file may end in a partial record. Nothing aborts.
 *
 * Threads: a writer is used by one thread at a time; distinct writers
 * (even on the same folder) share nothing. */
#ifndef ASG_LOGS_H
#define ASG_LOGS_H

#include "asg/program.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_tblog asg_tblog;

/* Buckets of a histogram: equal widths from the smallest to the largest
 * value, as TensorBoard's own histogram summaries (the largest value falls
 * in the last bucket). All values equal: one bucket. */
#define ASG_TBLOG_BUCKETS 30

/* Creates logdir (and its parents) when missing and a new event file in it,
 * holding the file_version record. NULL with an error (ASG_ERR_INVALID for
 * a NULL or empty logdir, ASG_ERR_IO when the folder or file cannot be
 * made, ASG_ERR_OOM). */
ASG_API asg_tblog *asg_tblog_open(const char *logdir);
/* The path of w's event file (NULL for a NULL w). */
ASG_API const char *asg_tblog_path(const asg_tblog *w);

/* A scalar under tag (e.g. "train/loss": TensorBoard groups tags by the
 * part before the first '/') at step; stored as float32 (TensorBoard's
 * simple_value), NaN and infinities included. tag must be non-empty. */
ASG_API asg_status asg_tblog_scalar(asg_tblog *w, const char *tag, int64_t step, double value);

/* A histogram of v[0..n) under tag at step: min, max, count, sum and sum of
 * squares (in double) and ASG_TBLOG_BUCKETS buckets (see above).
 * Non-finite values are left out (count included); ASG_ERR_INVALID when
 * no finite value remains (n == 0 included), nothing written. */
ASG_API asg_status asg_tblog_histogram(asg_tblog *w, const char *tag, int64_t step, const float *v,
                                       size_t n);

/* A histogram of each F32 and F64 variable of p under "params/<name>" at
 * step, read with asg_program_get_variable: the parameters and the model's
 * own state (e.g. batch-norm running statistics), not the optimizer's
 * (variables named "optim/..." and "<param>.<state>" for the states listed
 * in asg/optim.h). Variables of other dtypes and of no finite value are
 * skipped. Stops at the first error. */
ASG_API asg_status asg_tblog_variables(asg_tblog *w, asg_program *p, int64_t step);

/* Writes what is buffered to the file (fflush). */
ASG_API asg_status asg_tblog_flush(asg_tblog *w);
/* Flushes, closes the file and frees w (always, even on error); NULL is a
 * no-op returning ASG_OK. The status says whether everything written since
 * the open reached the file. */
ASG_API asg_status asg_tblog_close(asg_tblog *w);

#ifdef __cplusplus
}
#endif
#endif
