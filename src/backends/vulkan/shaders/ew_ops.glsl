// Op codes of the elementwise shaders (mirrored by the EW_* enum in
// vk_elementwise.c: keep in sync).
#define EW_NEG 0
#define EW_ABS 1
#define EW_SIGN 2
#define EW_EXP 3
#define EW_LOG 4
#define EW_SQRT 5
#define EW_RSQRT 6
#define EW_SIN 7
#define EW_COS 8
#define EW_TANH 9
#define EW_ERF 10
#define EW_SIGMOID 11
#define EW_RELU 12
#define EW_LEAKY_RELU 13
#define EW_GELU 14
#define EW_GELU_TANH 15
#define EW_SILU 16
#define EW_ELU 17
#define EW_SOFTPLUS 18
#define EW_CLAMP 19

#define EW_ADD 0
#define EW_SUB 1
#define EW_MUL 2
#define EW_DIV 3
#define EW_POW 4
#define EW_MAXIMUM 5
#define EW_MINIMUM 6
#define EW_EQ 7
#define EW_NE 8
#define EW_LT 9
#define EW_LE 10
#define EW_GT 11
#define EW_GE 12
#define EW_WHERE 13
#define EW_COPY 14
