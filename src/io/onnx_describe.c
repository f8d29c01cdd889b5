/* `asg onnx-info`: a summary of an ONNX file without building a graph. */
#ifdef ASG_HAVE_ONNX
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"
#include "io/onnx_internal.h"

static void put_value(asg_sbuf *b, const Onnx__ValueInfoProto *vi) {
  asg__sb_printf(b, "  %s: ", vi && vi->name ? vi->name : "?");
  const Onnx__TypeProto *tp = vi ? vi->type : NULL;
  /* tensor_type shares a union with the other kinds of type: read it only
   * when the oneof says it is the one set */
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
    asg__sb_puts(b, "(not a tensor)\n");
    return;
  }
  asg__sb_printf(b, "%s", onnx__type_name(tp->tensor_type->elem_type));
  const Onnx__TensorShapeProto *s = tp->tensor_type->shape;
  if (!s) {
    asg__sb_puts(b, " (rank unknown)\n");
    return;
  }
  asg__sb_puts(b, " [");
  for (size_t i = 0; i < s->n_dim && i < 64; i++) {
    const Onnx__TensorShapeProto__Dimension *d = s->dim[i];
    if (i) asg__sb_puts(b, ",");
    if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
      asg__sb_printf(b, "%lld", (long long)d->dim_value);
    else if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
      asg__sb_printf(b, "%.64s", d->dim_param ? d->dim_param : "?");
    else
      asg__sb_puts(b, "?");
  }
  asg__sb_puts(b, "]\n");
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

asg_status asg_onnx_describe(const char *path, char **text) {
  if (!text) return asg__error(ASG_ERR_INVALID, "onnx describe: text is NULL");
  *text = NULL;
  Onnx__ModelProto *m = NULL;
  asg_status st = onnx__read_model(path, 4ull << 30, "onnx describe", &m);
  if (st) return st;
  const Onnx__GraphProto *g = m->graph;
  asg_sbuf b = {0};
  int64_t opset = onnx__default_opset(m);
  asg__sb_printf(&b, "%s\nIR version %lld, producer %.64s %.32s, graph '%.128s'\nopsets:", path,
                 (long long)m->ir_version, m->producer_name ? m->producer_name : "",
                 m->producer_version ? m->producer_version : "", g->name ? g->name : "");
  for (size_t i = 0; i < m->n_opset_import && i < 64; i++)
    if (m->opset_import[i])
      asg__sb_printf(&b, " %.64s:%lld",
                     m->opset_import[i]->domain && m->opset_import[i]->domain[0]
                         ? m->opset_import[i]->domain
                         : "ai.onnx",
                     (long long)m->opset_import[i]->version);
  size_t n_init_bytes = 0;
  for (size_t i = 0; i < g->n_initializer; i++)
    if (g->initializer[i]) n_init_bytes += g->initializer[i]->raw_data.len;
  asg__sb_printf(&b, "\n%zu nodes, %zu initializers (%zu bytes of raw data)\ninputs:\n", g->n_node,
                 g->n_initializer, n_init_bytes);
  for (size_t i = 0; i < g->n_input; i++) {
    bool is_init = false;
    for (size_t k = 0; k < g->n_initializer && !is_init; k++)
      is_init = g->input[i] && g->input[i]->name && g->initializer[k] && g->initializer[k]->name &&
                !strcmp(g->input[i]->name, g->initializer[k]->name);
    if (!is_init) put_value(&b, g->input[i]);
  }
  asg__sb_puts(&b, "outputs:\n");
  for (size_t i = 0; i < g->n_output; i++)
    put_value(&b, g->output[i]);
  /* op histogram: sort the op types, count runs */
  const char **types = malloc((g->n_node + 1) * sizeof *types);
  size_t nt = 0;
  for (size_t i = 0; types && i < g->n_node; i++)
    if (g->node[i] && g->node[i]->op_type) types[nt++] = g->node[i]->op_type;
  if (types) qsort(types, nt, sizeof *types, cmp_str);
  asg__sb_puts(&b, "operators:\n");
  asg_sbuf missing = {0};
  for (size_t i = 0; i < nt;) {
    size_t j = i;
    while (j < nt && !strcmp(types[j], types[i]))
      j++;
    bool ok = asg_onnx_op_supported(types[i], opset);
    asg__sb_printf(&b, "  %-24.64s %6zu%s\n", types[i], j - i, ok ? "" : "  (not supported)");
    if (!ok) asg__sb_printf(&missing, " %.64s", types[i]);
    i = j;
  }
  free(types);
  asg__sb_printf(&b, "not supported by ASG:%s\n", missing.len ? missing.s : " none");
  asg__sb_free(&missing);
  onnx__model_proto__free_unpacked(m, NULL);
  if (b.oom || !b.s) {
    asg__sb_free(&b);
    return asg__error(ASG_ERR_OOM, "onnx describe: no memory");
  }
  *text = b.s;
  return ASG_OK;
}
#endif
