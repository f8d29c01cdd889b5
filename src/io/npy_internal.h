/* The .npy layer shared by npy.c and npz.c: header parsing and element
 * conversion on bytes already in memory. */
#ifndef ASG_IO_NPY_INTERNAL_H
#define ASG_IO_NPY_INTERNAL_H

#include "io/atomic_file.h"

#define ASG__NPY_MAX_HEADER 65536

typedef struct asg__npy_info {
  char kind;    /* 'f', 'i', 'u', 'b' */
  int size;     /* bytes an element in the file */
  bool swap;    /* big-endian in the file */
  asg_dtype dt; /* what it reads as */
  asg_shape shape;
  int64_t numel;
  size_t data_off; /* where the data starts */
  size_t nbytes;   /* data bytes in the file */
} asg__npy_info;

/* Parses the magic, version and header dict in buf[0..len) (len may be
 * longer than the header). who/name go into messages. */
asg_status asg__npy_parse(const unsigned char *buf, size_t len, const char *who, const char *name,
                          asg__npy_info *info);
/* Converts info->numel elements from file bytes src into dst (dtype
 * info->dt). */
asg_status asg__npy_convert(const asg__npy_info *info, const unsigned char *src, void *dst,
                            const char *who, const char *name);
/* The .npy header (magic to '\\n') for t into buf (capacity 256); its length. */
size_t asg__npy_header(const asg_host_tensor *t, char *buf);
/* Checks t for writing: dtype, data, shape; its data bytes in *nbytes. */
asg_status asg__npy_check_write(const asg_host_tensor *t, const char *who, const char *name,
                                size_t *nbytes);
/* CRC-32 (zip's) of n bytes continuing from crc (start with 0). */
uint32_t asg__crc32(uint32_t crc, const void *buf, size_t n);

#endif
