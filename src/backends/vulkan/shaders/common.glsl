// Shared by every ASG compute shader (included after #version).
//
// Buffers are raw device addresses (GL_EXT_buffer_reference): the push
// constant is the address of this dispatch's parameter block, a
// buffer_reference block declared by each shader (`Params`), whose layout
// matches a C struct on the host side (std430: 8-byte fields first, then
// int32 arrays). Element type T of the variant comes from the build:
// -DT_F32, -DT_F64, -DT_I32 or -DT_I64 (see the *.list files).
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_shader_explicit_arithmetic_types_int32 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require

layout(push_constant) uniform Push { uint64_t params; } push;

layout(buffer_reference, std430, buffer_reference_align = 4) buffer BufF32 { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer BufF64 { double v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer BufI32 { int v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer BufI64 { int64_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer BufU32 { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer BufU64 { uint64_t v[]; };

#if defined(T_F32)
#define T float
#define BufT BufF32
#define T_IS_FLOAT 1
#elif defined(T_F64)
#define T double
#define BufT BufF64
#define T_IS_FLOAT 1
#elif defined(T_I32)
#define T int
#define BufT BufI32
#define T_IS_FLOAT 0
#elif defined(T_I64)
#define T int64_t
#define BufT BufI64
#define T_IS_FLOAT 0
#endif

// Grid-stride loop over [0, n) for 1-D dispatches (asg_vk_groups caps the
// group count, so one invocation may handle several items).
#define GRID_LOOP(i, n)                                                                            \
  for (uint i = gl_GlobalInvocationID.x; i < uint(n); i += gl_NumWorkGroups.x * gl_WorkGroupSize.x)
