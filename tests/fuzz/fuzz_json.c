/* Fuzz target: the JSON parser behind safetensors headers (internal API,
 * src/io/io_internal.h). Nesting stays bounded, object keys are unique, and
 * every string accepted is valid UTF-8 that survives a round trip through
 * the writer's escaping. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/io_internal.h"

static void check_str(const char *s) {
  if (!asg__utf8_valid((const unsigned char *)s, strlen(s))) abort();
  asg_sbuf b = {0};
  asg__sb_json_str(&b, s);
  if (b.oom) {
    asg__sb_free(&b);
    return;
  }
  asg_jval v;
  char err[256];
  if (!asg__json_parse(b.s, b.len, &v, err, sizeof err) || v.type != ASG_J_STR ||
      strcmp(v.s, s) != 0)
    abort();
  asg__json_free(&v);
  asg__sb_free(&b);
}

static void walk(const asg_jval *v, int depth) {
  if (depth > 64) abort(); /* the parser bounds nesting (JSON_MAX_DEPTH) */
  if (v->type == ASG_J_STR) check_str(v->s);
  if (v->type != ASG_J_ARR && v->type != ASG_J_OBJ) return;
  for (int i = 0; i < v->n; i++) {
    if (v->type == ASG_J_OBJ) check_str(v->keys[i]);
    walk(&v->items[i], depth + 1);
  }
  if (v->type == ASG_J_OBJ && v->n <= 256) /* keys are unique */
    for (int i = 0; i < v->n; i++)
      for (int j = i + 1; j < v->n; j++)
        if (strcmp(v->keys[i], v->keys[j]) == 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  asg_jval v;
  char err[256];
  err[0] = '\0';
  if (!asg__json_parse((const char *)data, size, &v, err, sizeof err)) {
    if (!err[0] || !memchr(err, '\0', sizeof err)) abort();
    return 0;
  }
  walk(&v, 0);
  asg__json_free(&v);
  return 0;
}
