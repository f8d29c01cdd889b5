/* Shared pieces of the fuzz targets (tests/fuzz/fuzz_*.c). Each target
 * defines LLVMFuzzerTestOneInput; built with ASG_FUZZ=ON (clang) it links
 * libFuzzer, otherwise replay.c supplies a main() that runs the files or
 * directories given on the command line (the committed corpus in ctest). */
#ifndef ASG_FUZZ_H
#define ASG_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "asg/asg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The loaders take paths: writes data to this process's scratch file (a
 * regular file under $TMPDIR, reused for every input, removed at exit) and
 * returns its path, or NULL if it cannot be written. */
const char *fuzz_file(const uint8_t *data, size_t size);

/* Sums of bytes that a target reads only so that ASan checks their bounds
 * are stored here (so that the reads are not optimized away). */
extern volatile unsigned fuzz_sink;

/* The small program that the checkpoint target loads into and the corpus
 * generator saves: inputs "x" [4, 6] F32 and "y" [4] I32, an MLP
 * 6 -> 5 -> 3 (fc1, fc2) with batch norm, cross-entropy and Adam. Sets
 * *loss to the loss tensor. NULL on error (message printed). */
asg_program *fuzz_model(asg_graph **g, asg_tensor **loss);
/* Feeds fixed data to the model's inputs. */
asg_status fuzz_model_feed(asg_program *p);

#endif
