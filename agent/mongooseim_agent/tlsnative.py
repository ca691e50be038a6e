"""Two OpenSSL settings Python's ssl module does not expose, set on an SSLContext's SSL_CTX.

- Asking for a client certificate without verifying it (the toolkit's `RequestClientCert`
  and `RequireAnyClientCert`): `SSL_CTX_set_verify` with a callback that accepts any chain.
- A curve preference list (`curve_preferences`): `SSL_CTX_set1_groups_list`.

The SSL_CTX pointer is the first field after the object header of CPython's `_ssl._SSLContext`
(`PySSLContext`); before anything is written through it, the pointer is checked by reading
the verify mode and options back through OpenSSL and comparing them with what Python reports.
A mismatch is an error, never a guess.
"""

from __future__ import annotations

import ctypes
import ssl
from typing import Any

_SSL_VERIFY_PEER = 0x01
_SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02
_SSL_CTRL_SET_GROUPS_LIST = 92

_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


class NativeTLSError(Exception):
    """The setting could not be applied through OpenSSL."""


def _accept_any(preverify_ok: int, store: int | None) -> int:
    return 1


def _libssl() -> Any:
    # dlsym on the _ssl extension's handle finds the libssl it was linked against; an
    # interpreter with _ssl built in has OpenSSL's symbols in the executable itself.
    return ctypes.CDLL(getattr(ssl._ssl, "__file__", None))  # type: ignore[attr-defined]


def _as_python_mode(mode: int) -> ssl.VerifyMode:
    if not mode & _SSL_VERIFY_PEER:
        return ssl.CERT_NONE
    return ssl.CERT_REQUIRED if mode & _SSL_VERIFY_FAIL_IF_NO_PEER_CERT else ssl.CERT_OPTIONAL


def _ctx_pointer(context: ssl.SSLContext, lib: Any) -> int:
    address = id(context) + object.__basicsize__
    pointer = ctypes.c_void_p.from_address(address).value
    if not pointer:
        raise NativeTLSError("cannot reach OpenSSL's SSL_CTX from Python")
    if not hasattr(lib, "SSL_CTX_get_verify_mode"):
        raise NativeTLSError("OpenSSL's functions are not reachable from Python here")
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    if lib.SSL_CTX_get_options(pointer) != int(context.options) or (
        _as_python_mode(lib.SSL_CTX_get_verify_mode(pointer)) != context.verify_mode
    ):
        raise NativeTLSError("OpenSSL's SSL_CTX does not match the Python context")
    return int(pointer)


def request_unverified_client_cert(context: ssl.SSLContext, require: bool) -> None:
    """Ask every client for a certificate and accept any; with `require`, refuse none."""
    lib = _libssl()
    pointer = _ctx_pointer(context, lib)
    mode = _SSL_VERIFY_PEER | (_SSL_VERIFY_FAIL_IF_NO_PEER_CERT if require else 0)
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
    lib.SSL_CTX_set_verify.restype = None
    callback = _VERIFY_CALLBACK(_accept_any)
    lib.SSL_CTX_set_verify(pointer, mode, callback)
    # OpenSSL keeps the function pointer: the callback lives as long as the context.
    setattr(context, "_mongooseim_agent_verify_callback", callback)  # noqa: B010
    if lib.SSL_CTX_get_verify_mode(pointer) != mode:
        raise NativeTLSError("could not set the client certificate mode")


def set_groups(context: ssl.SSLContext, groups: list[str]) -> None:
    """Key exchange groups in preference order, e.g. ["X25519", "P-256"]."""
    lib = _libssl()
    pointer = _ctx_pointer(context, lib)
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    if lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, ":".join(groups).encode()) != 1:
        raise NativeTLSError(f"OpenSSL refused the curve list {groups}")
