"""_lib.py — libsli.so.1 through ctypes: where it is found, the C declarations the package uses,
and the one way a failing call becomes an exception (sli.Error)."""
import ctypes
import ctypes.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def _find():
    """SLI_LIBRARY (a path), else the build tree this package sits in (bindings/python/sli →
    build/plugin), else the system's libsli.so.1."""
    path = os.environ.get("SLI_LIBRARY")
    if path:
        return path
    top = os.path.abspath(os.path.join(_HERE, "..", "..", ".."))
    for build in (os.environ.get("SLI_BUILD_DIR"), os.path.join(top, "build")):
        if build:
            cand = os.path.join(build if os.path.isabs(build) else os.path.join(top, build),
                                "plugin", "libsli.so.1")
            if os.path.exists(cand):
                return cand
    return ctypes.util.find_library("sli") or "libsli.so.1"


lib = ctypes.CDLL(_find())

c_u8p = ctypes.POINTER(ctypes.c_uint8)
c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_void_pp = ctypes.POINTER(ctypes.c_void_p)


def _decl(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


# Errors and memory
sli_err_name = _decl("sli_err_name", ctypes.c_char_p, ctypes.c_int)
sli_strerror = _decl("sli_strerror", ctypes.c_char_p, ctypes.c_int)
sli_last_error = _decl("sli_last_error", ctypes.c_char_p)
sli_free = _decl("sli_free", None, ctypes.c_void_p, ctypes.c_size_t)
sli_version_string = _decl("sli_version_string", ctypes.c_char_p)

# Sealed blobs and keyrings
sli_keyring_generate = _decl("sli_keyring_generate", ctypes.c_int, c_void_pp)
sli_keyring_rotate = _decl("sli_keyring_rotate", ctypes.c_int, c_void_pp, ctypes.c_void_p)
sli_keyring_load_file = _decl("sli_keyring_load_file", ctypes.c_int, c_void_pp, ctypes.c_char_p,
                              ctypes.c_char_p, ctypes.c_size_t)
sli_keyring_save_file = _decl("sli_keyring_save_file", ctypes.c_int, ctypes.c_void_p,
                              ctypes.c_char_p)
sli_keyring_free = _decl("sli_keyring_free", None, ctypes.c_void_p)
sli_keyring_count = _decl("sli_keyring_count", ctypes.c_size_t, ctypes.c_void_p)
sli_keyring_key_id = _decl("sli_keyring_key_id", ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
sli_keyring_key_created = _decl("sli_keyring_key_created", ctypes.c_int64, ctypes.c_void_p,
                                ctypes.c_size_t)
sli_seal = _decl("sli_seal", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, c_size_p,
                 ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
sli_open = _decl("sli_open", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, c_size_p,
                 ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
sli_sealed_key_id = _decl("sli_sealed_key_id", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                          ctypes.POINTER(ctypes.c_uint32))
SEAL_OVERHEAD = 33

# Keys and signatures
sli_key_generate = _decl("sli_key_generate", ctypes.c_int, c_void_pp, ctypes.c_int, ctypes.c_int,
                         ctypes.c_uint32)
sli_key_load_file = _decl("sli_key_load_file", ctypes.c_int, c_void_pp, ctypes.c_char_p,
                          ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t)
sli_key_free = _decl("sli_key_free", None, ctypes.c_void_p)
sli_key_type = _decl("sli_key_type", ctypes.c_int, ctypes.c_void_p)
sli_key_bits = _decl("sli_key_bits", ctypes.c_int, ctypes.c_void_p)
sli_key_has_private = _decl("sli_key_has_private", ctypes.c_int, ctypes.c_void_p)
sli_key_private_pem_alloc = _decl("sli_key_private_pem_alloc", ctypes.c_int, ctypes.c_void_p,
                                  ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), c_size_p)
sli_key_public_pem_alloc = _decl("sli_key_public_pem_alloc", ctypes.c_int, ctypes.c_void_p,
                                 ctypes.POINTER(ctypes.c_void_p), c_size_p)
sli_key_sig_max_size = _decl("sli_key_sig_max_size", ctypes.c_size_t, ctypes.c_void_p)
sli_key_sign = _decl("sli_key_sign", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, c_size_p,
                     ctypes.c_char_p, ctypes.c_size_t)
sli_key_verify = _decl("sli_key_verify", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                       ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)

# age v1 files
c_pp = ctypes.POINTER(ctypes.c_void_p)
sli_age_identity_generate = _decl("sli_age_identity_generate", ctypes.c_int, c_void_pp)
sli_age_identity_parse = _decl("sli_age_identity_parse", ctypes.c_int, c_void_pp, ctypes.c_char_p)
sli_age_identity_scrypt = _decl("sli_age_identity_scrypt", ctypes.c_int, c_void_pp, ctypes.c_char_p)
sli_age_identity_encode = _decl("sli_age_identity_encode", ctypes.c_int, ctypes.c_void_p,
                                ctypes.c_char_p, ctypes.c_size_t)
sli_age_identity_from_key = _decl("sli_age_identity_from_key", ctypes.c_int, c_void_pp,
                                  ctypes.c_void_p)
sli_age_identity_recipient = _decl("sli_age_identity_recipient", ctypes.c_int, ctypes.c_void_p,
                                   c_void_pp)
sli_age_identity_free = _decl("sli_age_identity_free", None, ctypes.c_void_p)
sli_age_recipient_parse = _decl("sli_age_recipient_parse", ctypes.c_int, c_void_pp, ctypes.c_char_p)
sli_age_recipient_scrypt = _decl("sli_age_recipient_scrypt", ctypes.c_int, c_void_pp,
                                 ctypes.c_char_p, ctypes.c_int)
sli_age_recipient_from_key = _decl("sli_age_recipient_from_key", ctypes.c_int, c_void_pp,
                                   ctypes.c_void_p)
sli_age_recipient_encode = _decl("sli_age_recipient_encode", ctypes.c_int, ctypes.c_void_p,
                                 ctypes.c_char_p, ctypes.c_size_t)
sli_age_recipient_free = _decl("sli_age_recipient_free", None, ctypes.c_void_p)
sli_age_enc_new = _decl("sli_age_enc_new", ctypes.c_int, c_void_pp, c_pp, ctypes.c_size_t,
                        ctypes.c_uint32)
sli_age_enc_update_bound = _decl("sli_age_enc_update_bound", ctypes.c_size_t, ctypes.c_void_p,
                                 ctypes.c_size_t)
sli_age_enc_update = _decl("sli_age_enc_update", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                           c_size_p, ctypes.c_char_p, ctypes.c_size_t)
sli_age_enc_final_bound = _decl("sli_age_enc_final_bound", ctypes.c_size_t, ctypes.c_void_p)
sli_age_enc_final = _decl("sli_age_enc_final", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                          c_size_p)
sli_age_enc_error = _decl("sli_age_enc_error", ctypes.c_char_p, ctypes.c_void_p)
sli_age_enc_free = _decl("sli_age_enc_free", None, ctypes.c_void_p)
sli_age_dec_new = _decl("sli_age_dec_new", ctypes.c_int, c_void_pp, c_pp, ctypes.c_size_t,
                        ctypes.c_uint32)
sli_age_dec_update_bound = _decl("sli_age_dec_update_bound", ctypes.c_size_t, ctypes.c_void_p,
                                 ctypes.c_size_t)
sli_age_dec_update = _decl("sli_age_dec_update", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                           c_size_p, ctypes.c_char_p, ctypes.c_size_t)
sli_age_dec_final = _decl("sli_age_dec_final", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                          c_size_p)
sli_age_dec_error = _decl("sli_age_dec_error", ctypes.c_char_p, ctypes.c_void_p)
sli_age_dec_free = _decl("sli_age_dec_free", None, ctypes.c_void_p)
AGE_ARMOR, AGE_PARALLEL, AGE_CHUNK = 0x1, 0x2, 65536

# TLS
sli_config_new = _decl("sli_config_new", ctypes.c_void_p)
sli_config_free = _decl("sli_config_free", None, ctypes.c_void_p)
sli_config_error = _decl("sli_config_error", ctypes.c_char_p, ctypes.c_void_p)
sli_config_set_option = _decl("sli_config_set_option", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                              ctypes.c_char_p)
sli_ctx_new_server = _decl("sli_ctx_new_server", ctypes.c_int, c_void_pp, ctypes.c_void_p,
                           ctypes.c_uint32)
sli_ctx_new_client = _decl("sli_ctx_new_client", ctypes.c_int, c_void_pp, ctypes.c_void_p,
                           ctypes.c_uint32)
sli_ctx_free = _decl("sli_ctx_free", None, ctypes.c_void_p)
sli_conn_new_fd = _decl("sli_conn_new_fd", ctypes.c_int, c_void_pp, ctypes.c_void_p, ctypes.c_int,
                        ctypes.c_char_p, ctypes.c_uint32)
READ_FN = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_void_p)
WRITE_FN = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.c_void_p)
sli_conn_new_cbs = _decl("sli_conn_new_cbs", ctypes.c_int, c_void_pp, ctypes.c_void_p, READ_FN,
                         WRITE_FN, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32)
sli_conn_sys_error = _decl("sli_conn_sys_error", ctypes.c_int, ctypes.c_void_p)
sli_conn_deadline_ms = _decl("sli_conn_deadline_ms", ctypes.c_int64, ctypes.c_void_p)
ALPN_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p),
                           ctypes.c_size_t, ctypes.c_void_p)
PKEY_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p)
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
sli_config_set_alpn_select_cb = _decl("sli_config_set_alpn_select_cb", ctypes.c_int,
                                      ctypes.c_void_p, ALPN_FN, ctypes.c_void_p)
sli_config_set_private_key_cb = _decl("sli_config_set_private_key_cb", ctypes.c_int,
                                      ctypes.c_void_p, PKEY_FN, ctypes.c_void_p)
sli_config_add_cert_file_async_key = _decl("sli_config_add_cert_file_async_key", ctypes.c_int,
                                           ctypes.c_void_p, ctypes.c_char_p)
sli_conn_private_key_done = _decl("sli_conn_private_key_done", ctypes.c_int, ctypes.c_void_p,
                                  ctypes.c_char_p, ctypes.c_size_t)
sli_conn_servername = _decl("sli_conn_servername", ctypes.c_char_p, ctypes.c_void_p)
sli_conn_peer_addr = _decl("sli_conn_peer_addr", ctypes.c_char_p, ctypes.c_void_p)
sli_set_log_callback = _decl("sli_set_log_callback", None, LOG_FN, ctypes.c_int, ctypes.c_void_p)
sli_conn_handshake = _decl("sli_conn_handshake", ctypes.c_int, ctypes.c_void_p)
sli_conn_read = _decl("sli_conn_read", ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_void_p,
                      ctypes.c_size_t)
sli_conn_write = _decl("sli_conn_write", ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_char_p,
                       ctypes.c_size_t)
sli_conn_pending = _decl("sli_conn_pending", ctypes.c_size_t, ctypes.c_void_p)
sli_conn_close = _decl("sli_conn_close", ctypes.c_int, ctypes.c_void_p)
sli_conn_free = _decl("sli_conn_free", None, ctypes.c_void_p)
sli_conn_error = _decl("sli_conn_error", ctypes.c_char_p, ctypes.c_void_p)
sli_conn_is_secured = _decl("sli_conn_is_secured", ctypes.c_int, ctypes.c_void_p)
sli_conn_version = _decl("sli_conn_version", ctypes.c_char_p, ctypes.c_void_p)
sli_conn_cipher = _decl("sli_conn_cipher", ctypes.c_char_p, ctypes.c_void_p)
sli_conn_alpn = _decl("sli_conn_alpn", ctypes.c_char_p, ctypes.c_void_p)
sli_conn_is_resumed = _decl("sli_conn_is_resumed", ctypes.c_int, ctypes.c_void_p)
WANT_READ, WANT_WRITE = -1001, -1002
E_IO = -1201
WANT_PRIVATE_KEY = -1004
E_INVAL, E_SIGNATURE = -1801, -1706
ALPN_NONE = -1

# Certificates
sli_cert_load_file = _decl("sli_cert_load_file", ctypes.c_int, c_void_pp, ctypes.c_char_p,
                           ctypes.c_char_p, ctypes.c_size_t)
sli_cert_load_mem = _decl("sli_cert_load_mem", ctypes.c_int, c_void_pp, ctypes.c_char_p,
                          ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
sli_cert_up_ref = _decl("sli_cert_up_ref", ctypes.c_void_p, ctypes.c_void_p)
sli_cert_free = _decl("sli_cert_free", None, ctypes.c_void_p)
sli_cert_subject = _decl("sli_cert_subject", ctypes.c_char_p, ctypes.c_void_p)
sli_cert_issuer = _decl("sli_cert_issuer", ctypes.c_char_p, ctypes.c_void_p)
sli_cert_san_count = _decl("sli_cert_san_count", ctypes.c_size_t, ctypes.c_void_p)
sli_cert_san = _decl("sli_cert_san", ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)
sli_cert_not_before = _decl("sli_cert_not_before", ctypes.c_int64, ctypes.c_void_p)
sli_cert_not_after = _decl("sli_cert_not_after", ctypes.c_int64, ctypes.c_void_p)
sli_cert_fingerprint_sha256 = _decl("sli_cert_fingerprint_sha256", ctypes.c_char_p, ctypes.c_void_p)
sli_cert_chain_pem = _decl("sli_cert_chain_pem", ctypes.c_char_p, ctypes.c_void_p)
sli_conn_peer_cert = _decl("sli_conn_peer_cert", ctypes.c_void_p, ctypes.c_void_p)
c_charpp = ctypes.POINTER(ctypes.c_char_p)
sli_csr_create_alloc = _decl("sli_csr_create_alloc", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                             c_charpp, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p), c_size_p)
sli_cert_selfsign_alloc = _decl("sli_cert_selfsign_alloc", ctypes.c_int, ctypes.c_void_p,
                                ctypes.c_char_p, c_charpp, ctypes.c_size_t, ctypes.c_int,
                                ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p), c_size_p)
sli_ca_issue_alloc = _decl("sli_ca_issue_alloc", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                           ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                           ctypes.POINTER(ctypes.c_void_p), c_size_p)

# Signatures over a message in pieces
sli_signer_new = _decl("sli_signer_new", ctypes.c_int, c_void_pp, ctypes.c_void_p, ctypes.c_int)
sli_signer_update = _decl("sli_signer_update", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                          ctypes.c_size_t)
sli_signer_sign_final = _decl("sli_signer_sign_final", ctypes.c_int, ctypes.c_void_p,
                              ctypes.c_void_p, c_size_p)
sli_signer_verify_final = _decl("sli_signer_verify_final", ctypes.c_int, ctypes.c_void_p,
                                ctypes.c_char_p, ctypes.c_size_t)
sli_signer_free = _decl("sli_signer_free", None, ctypes.c_void_p)
