/* bech32.c — Bech32 (BIP 173) as age uses it for "age1…" recipients and "AGE-SECRET-KEY-1…"
 * identities (no 90-character limit). */
#include <ctype.h>
#include <string.h>

#include "age/age.h"

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod(const uint8_t *v, size_t n) {
  static const uint32_t g[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  uint32_t chk = 1;
  for (size_t i = 0; i < n; i++) {
    uint8_t top = chk >> 25;
    chk = (chk & 0x1ffffff) << 5 ^ v[i];
    for (int j = 0; j < 5; j++)
      if ((top >> j) & 1) chk ^= g[j];
  }
  return chk;
}

/* hrp expansion + data, for the checksum */
static size_t expand(uint8_t *out, const char *hrp, const uint8_t *data, size_t dn) {
  size_t h = strlen(hrp), o = 0;
  for (size_t i = 0; i < h; i++) out[o++] = (uint8_t)tolower((unsigned char)hrp[i]) >> 5;
  out[o++] = 0;
  for (size_t i = 0; i < h; i++) out[o++] = (uint8_t)tolower((unsigned char)hrp[i]) & 31;
  memcpy(out + o, data, dn);
  return o + dn;
}

int sli__bech32_encode(char *out, size_t cap, const char *hrp, const uint8_t *bytes, size_t n,
                       int upper) {
  uint8_t data[128], buf[256];
  size_t dn = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) { /* 8-bit to 5-bit groups */
    acc = acc << 8 | bytes[i];
    bits += 8;
    while (bits >= 5) {
      data[dn++] = (acc >> (bits - 5)) & 31;
      bits -= 5;
    }
  }
  if (bits) data[dn++] = (acc << (5 - bits)) & 31;
  size_t m = expand(buf, hrp, data, dn);
  memset(buf + m, 0, 6);
  uint32_t pm = polymod(buf, m + 6) ^ 1;
  for (int i = 0; i < 6; i++) data[dn + (size_t)i] = (pm >> (5 * (5 - i))) & 31;
  size_t h = strlen(hrp);
  if (h + 1 + dn + 6 + 1 > cap) return SLI_E_BUFSIZE;
  for (size_t i = 0; i < h; i++) out[i] = upper ? (char)toupper((unsigned char)hrp[i]) : (char)tolower((unsigned char)hrp[i]);
  out[h] = '1';
  for (size_t i = 0; i < dn + 6; i++) {
    char c = charset[data[i]];
    out[h + 1 + i] = upper ? (char)toupper((unsigned char)c) : c;
  }
  out[h + 1 + dn + 6] = 0;
  return 0;
}

int sli__bech32_decode(const char *s, const char *want_hrp, uint8_t *out, size_t want_len) {
  size_t n = strlen(s);
  int lower = 0, upperc = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < 33 || s[i] > 126) return SLI_E_INVAL;
    lower |= islower((unsigned char)s[i]) != 0;
    upperc |= isupper((unsigned char)s[i]) != 0;
  }
  if (lower && upperc) return SLI_E_INVAL;
  const char *sep = strrchr(s, '1');
  if (!sep || sep == s || (size_t)(s + n - sep - 1) < 6) return SLI_E_INVAL;
  size_t h = (size_t)(sep - s);
  if (h != strlen(want_hrp) || strncasecmp(s, want_hrp, h) != 0) return SLI_E_INVAL;
  uint8_t data[128], buf[256];
  size_t dn = n - h - 1;
  if (dn > sizeof(data)) return SLI_E_INVAL;
  for (size_t i = 0; i < dn; i++) {
    const char *p = strchr(charset, tolower((unsigned char)sep[1 + i]));
    if (!p || !*p) return SLI_E_INVAL;
    data[i] = (uint8_t)(p - charset);
  }
  char hrp[64];
  snprintf(hrp, sizeof(hrp), "%.*s", (int)h, s);
  size_t m = expand(buf, hrp, data, dn);
  if (polymod(buf, m) != 1) return SLI_E_INVAL;
  dn -= 6;
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < dn; i++) {
    acc = acc << 5 | data[i];
    bits += 5;
    if (bits >= 8) {
      if (o == want_len) return SLI_E_INVAL;
      out[o++] = (uint8_t)(acc >> (bits - 8));
      bits -= 8;
    }
  }
  if (bits >= 5 || (acc & ((1u << bits) - 1)) || o != want_len) return SLI_E_INVAL;
  return 0;
}
