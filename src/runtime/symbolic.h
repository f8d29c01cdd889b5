/* Symbolic programs (src/runtime/symbolic.c): a program compiled from a
 * graph with symbolic dims is a shell (the variable store, the run counter)
 * plus a cache of static specializations, one per binding of the symbols.
 * program.c dispatches to these when p has a symbolic part. Internal. */
#ifndef ASG_RUNTIME_SYMBOLIC_H
#define ASG_RUNTIME_SYMBOLIC_H

#include "runtime/backend.h"
#include "runtime/program_internal.h"

typedef struct asg__symprog asg__symprog;

/* ---- program.c, for symbolic.c ---- */
/* A program without a plan: a variable store (shared with o->share_variables
 * or new, with the device opened) and a run counter. Owns sym (freed with
 * it). NULL and an error on failure (sym is then freed too). */
asg_program *asg__program_shell(const asg_backend *be, const asg_compile_opts *o,
                                asg__symprog *sym);
/* Registers (creating and initializing) variable t in p's store. */
asg_status asg__program_add_variable(asg_program *p, const asg_tensor *t);
/* Device bytes a static program holds besides the shared variables:
 * its arena, constants and inputs. */
size_t asg__program_own_bytes(const asg_program *p);
/* p's symbolic part, or NULL for a static program. */
asg__symprog *asg__program_sym(const asg_program *p);
/* A static program's output (or variable, input) shape. */
asg_status asg__program_out_shape(const asg_program *p, const asg_tensor *t, asg_shape *shape);

/* ---- symbolic.c, for program.c ---- */
asg_program *asg__symp_compile(asg_graph *g, int n_out, asg_tensor *const *outs,
                               const asg_compile_opts *o, const asg_backend *be);
void asg__symp_free(asg__symprog *s);
asg_status asg__symp_feed(asg_program *p, asg__symprog *s, const char *name, const void *data,
                          size_t nbytes);
asg_status asg__symp_feed_tensor(asg_program *p, asg__symprog *s, const char *name, asg_dtype dt,
                                 asg_shape shape, const void *data);
asg_status asg__symp_run(asg_program *p, asg__symprog *s);
asg_status asg__symp_fetch(asg__symprog *s, asg_program *p, const asg_tensor *t, void *dst,
                           size_t nbytes);
double asg__symp_scalar(asg__symprog *s, const asg_tensor *t);
/* The static program of the last run (NULL before any, or once evicted). */
asg_program *asg__symp_current(const asg__symprog *s);
void asg__symp_set_optim_info(asg__symprog *s, const asg__optim_info *info);

#endif
