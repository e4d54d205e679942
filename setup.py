"""Build hook for the optional C speedups (metadata lives in pyproject.toml).

`hubbub._speedups` (SRTP protect + sendmmsg batches) is optional: when it cannot be built
(no compiler, not Linux), hubbub uses the pure-Python send path (hubbub.media.batch). With the
OpenSSL headers present it also gets its own AEAD_AES_128_GCM SRTP sender (HUBBUB_GCM).
`hubbub.client.bots._drain` (recvmmsg for load-generator bots) is optional too: without it the
bots receive through asyncio (hubbub.client.bots.drain).
"""

import os
import sys

from setuptools import Extension, setup


def _openssl_headers() -> bool:
    """True when <openssl/evp.h> is in one of the usual include dirs."""
    dirs = ["/usr/include", "/usr/local/include", "/opt/homebrew/include"]
    dirs += [d for d in os.environ.get("CPATH", "").split(":") if d]
    return any(os.path.exists(os.path.join(d, "openssl", "evp.h")) for d in dirs)


ext_modules = []
if sys.platform.startswith("linux"):
    gcm = _openssl_headers()
    ext_modules.append(
        Extension("hubbub._speedups", sources=["src/hubbub/_speedups.c"], optional=True,
                  define_macros=[("HUBBUB_GCM", "1")] if gcm else [],
                  libraries=["crypto"] if gcm else [])
    )
    ext_modules.append(
        Extension("hubbub.client.bots._drain", sources=["src/hubbub/client/bots/_drain.c"],
                  optional=True)
    )

setup(ext_modules=ext_modules)
