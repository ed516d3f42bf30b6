/* Forced into BoringSSL's crypto/mem.c: declares its optional weak hooks hidden, so that a weak
 * reference stays inside libsli.so.1 (resolved to NULL) instead of becoming a dynamic import that a
 * host's allocator (jemalloc's sdallocx) or another library could satisfy. */
#include <stddef.h>
__attribute__((visibility("hidden"))) void sdallocx(void *ptr, size_t size, int flags);
__attribute__((visibility("hidden"))) void *OPENSSL_memory_alloc(size_t size);
__attribute__((visibility("hidden"))) void OPENSSL_memory_free(void *ptr);
__attribute__((visibility("hidden"))) size_t OPENSSL_memory_get_size(void *ptr);
