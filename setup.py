"""Build hook for the optional C speedups (metadata lives in pyproject.toml).

`hubbub._speedups` (SRTP protect + sendmmsg batches) is optional: when it cannot be built
(no compiler, not Linux), hubbub uses the pure-Python send path (hubbub.media.batch).
`hubbub.client.bots._drain` (recvmmsg for load-generator bots) is optional too: without it the
bots receive through asyncio (hubbub.client.bots.drain).
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(
        Extension("hubbub._speedups", sources=["src/hubbub/_speedups.c"], optional=True)
    )
    ext_modules.append(
        Extension("hubbub.client.bots._drain", sources=["src/hubbub/client/bots/_drain.c"],
                  optional=True)
    )

setup(ext_modules=ext_modules)
