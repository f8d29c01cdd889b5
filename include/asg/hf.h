/* Checkpoints in the Hugging Face layout (docs/hf.md): config.json, and
 * model weights as one model.safetensors or as shards listed by
 * model.safetensors.index.json, mapped to a program's variables by name
 * rules (rename, transpose, split a fused tensor). Generic: the rules say
 * how a model family's checkpoint names meet the variables of a program.
 *
 * Thread-safety: a config may be read from several threads; loading and
 * saving follow the program's rule (one thread at a time). */
#ifndef ASG_HF_H
#define ASG_HF_H

#include "asg/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- config.json ----
 * Keys name top-level entries; "a.b" names entry b of the object a (any
 * depth), e.g. "rope_scaling.factor" (a top-level key that itself holds a
 * '.' is found first). A getter that returns false (or NULL) leaves *out
 * alone and sets asg_last_error() to why: the key is absent (or null), or
 * its value has another type, naming the key and the file. */
typedef struct asg_hf_config asg_hf_config;

/* path: a folder (its config.json is read) or the file itself. NULL on
 * error: ASG_ERR_IO (cannot read), ASG_ERR_FORMAT (not JSON, or not an
 * object), naming the file. */
ASG_API asg_hf_config *asg_hf_config_load(const char *path);
ASG_API void asg_hf_config_free(asg_hf_config *c);
/* The key is present and not null. Sets no error. */
ASG_API bool asg_hf_config_has(const asg_hf_config *c, const char *key);
/* An integer literal (no fraction or exponent) that fits int64. */
ASG_API bool asg_hf_config_int(const asg_hf_config *c, const char *key, int64_t *out);
/* Any number (integers too), as the nearest double. */
ASG_API bool asg_hf_config_float(const asg_hf_config *c, const char *key, double *out);
ASG_API bool asg_hf_config_bool(const asg_hf_config *c, const char *key, bool *out);
/* A string (valid while c lives); NULL if absent or not a string. */
ASG_API const char *asg_hf_config_str(const asg_hf_config *c, const char *key);
/* A list of integers, or one integer as a list of one (eos_token_id is
 * either 2 or [1, 2]): stores the first min(count, cap) in out (out may be
 * NULL when cap is 0) and returns the count; -1 if absent or not integers. */
ASG_API int asg_hf_config_int_list(const asg_hf_config *c, const char *key, int64_t *out, int cap);

/* ---- name mapping ----
 * A pattern is literal text in which each '*' matches one non-empty run of
 * characters other than '.' (a layer number: "h.*.mlp.c_fc.weight"), at
 * most ASG_HF_MAX_STARS of them. A rule maps the checkpoint tensors its
 * `from` matches to the variable named by `to` with the i-th '*' replaced
 * by the i-th match (both patterns hold the same number of '*'). */
#define ASG_HF_MAX_STARS 8
typedef struct asg_hf_rule {
  const char *from; /* checkpoint name pattern */
  const char *to;   /* variable name pattern; NULL: such tensors are ignored (buffers) */
  /* A 2-D tensor stored [a, b] in the file is [b, a] in the variable (GPT-2's
   * Conv1D weights [in, out] for a Linear [out, in]). With split, the part
   * is transposed after it is cut out. */
  bool transpose;
  /* > 1: the file tensor is `split` equal parts along its axis split_axis
   * (a fused q/k/v weight) and this rule takes part `part` (0-based).
   * Several rules with the same `from` take the other parts. */
  int split, part, split_axis;
} asg_hf_rule;

/* Matching, for each checkpoint name (after strip_prefixes when loading):
 * the rules are tried in order and the first whose `from` matches decides;
 * when it splits, every rule with an identical `from` string takes its part.
 * A name no rule matches maps to the variable of the same name. Saving
 * inverts this: a variable is written under the `from` of the first rule
 * whose `to` matches it (the parts of a split concatenated back), or under
 * its own name when none does.
 *
 * Rules are checked first (ASG_ERR_INVALID naming the rule): a non-NULL
 * `from`, the same number of '*' on both sides, split 0 or 1 (no split) or
 * > 1 with 0 <= part < split and split_axis >= 0, the same split and
 * split_axis among the rules of one `from`, and no part taken twice. */

/* ---- loading ----
 * path: a folder holding model.safetensors or, failing that,
 * model.safetensors.index.json ({"weight_map": {tensor: shard file}}, the
 * shards in the same folder), or such an index file, or one .safetensors
 * file. The index lists the checkpoint: every shard it names is opened (a
 * missing shard, or a tensor absent from the shard the index gives it, is
 * ASG_ERR_FORMAT naming both); shard tensors the index does not list are
 * not read.
 *
 * Each tensor is converted to its variable's dtype (F16/BF16/F32/F64 among
 * themselves, I32/I64 among themselves). Nothing is written to the program
 * unless everything checks out; then the variables are written one at a
 * time through one scratch buffer (no copy of the whole model). Errors
 * name each offending tensor and the file (long lists are summarized):
 *   - a checkpoint tensor whose shape (after split and transpose) or
 *     float/integer kind differs from its variable's: ASG_ERR_SHAPE with
 *     both shapes, always;
 *   - strict: a variable no tensor provides ("missing"; optimizer state and
 *     `exclude` patterns are never required), and a tensor that maps to no
 *     variable ("unexpected"; rules with to == NULL ignore tensors):
 *     ASG_ERR_NOT_FOUND;
 *   - two tensors that provide one variable: ASG_ERR_INVALID;
 *   - a non-strict load that would write nothing: ASG_ERR_NOT_FOUND;
 *   - a file dtype ASG has no type for (BOOL, U8, ...): ASG_ERR_UNSUPPORTED
 *     when the file is opened (the whole file is refused). */
typedef struct asg_hf_load_opts {
  const asg_hf_rule *rules;
  int n_rules;
  bool strict;
  /* Variable names the checkpoint need not provide (KV caches: "cache.*").
   * Here '*' matches any run of characters, '.' and empty runs included. */
  const char *const *exclude;
  int n_exclude;
  /* A checkpoint name that starts with one of these (the first that does)
   * is matched without it: "transformer." accepts GPT-2 checkpoints saved
   * from GPT2LMHeadModel and from GPT2Model alike. */
  const char *const *strip_prefixes;
  int n_strip_prefixes;
} asg_hf_load_opts;

/* What a successful load did (all 0 after an error). */
typedef struct asg_hf_load_stats {
  int loaded;     /* variables written */
  int ignored;    /* checkpoint tensors dropped by rules with to == NULL */
  int unexpected; /* non-strict: checkpoint tensors (or parts) with no variable */
  int missing;    /* non-strict: required variables left as they were */
} asg_hf_load_stats;

/* opts may be NULL (no rules, not strict); stats may be NULL. */
ASG_API asg_status asg_hf_load(asg_program *p, const char *path, const asg_hf_load_opts *opts,
                               asg_hf_load_stats *stats);

/* ---- saving ----
 * Writes the program's model variables (not optimizer state, not
 * `exclude`d) into the folder dir (created if absent; its parent must
 * exist) as transformers writes a checkpoint: model.safetensors, or with
 * shard_bytes > 0, model-00001-of-0000N.safetensors ... (a new shard starts
 * when the next tensor would take the current one past shard_bytes; a
 * larger tensor gets a shard of its own) and model.safetensors.index.json
 * ({"metadata": {"total_size": bytes}, "weight_map": {...}}). Every file
 * carries the metadata {"format": "pt"}. Each file is written atomically
 * (temporary + rename); after the new files are in place, the files of an
 * earlier save that would shadow or confuse them are removed
 * (model.safetensors when sharding, the index when not, and shards
 * "model-*-of-*.safetensors" not written now). A split is saved only whole:
 * every part's variable must exist (ASG_ERR_NOT_FOUND naming the missing
 * one), all of one dtype and shape. Two variables that map to one
 * checkpoint name are ASG_ERR_INVALID. */
typedef struct asg_hf_save_opts {
  const asg_hf_rule *rules;
  int n_rules;
  const char *const *exclude; /* as in asg_hf_load_opts */
  int n_exclude;
  /* Store float variables as dtype (F32, F64, F16 or BF16, rounded to
   * nearest even); false: each variable's own dtype. Integers keep theirs. */
  bool convert;
  asg_dtype dtype;
  size_t shard_bytes; /* 0: one model.safetensors */
  /* Prepended to every saved name (e.g. "transformer.", the prefix a load
   * strips with strip_prefixes); NULL: none. */
  const char *prefix;
} asg_hf_save_opts;

/* opts may be NULL (no rules, own dtypes, one file). */
ASG_API asg_status asg_hf_save(asg_program *p, const char *dir, const asg_hf_save_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
