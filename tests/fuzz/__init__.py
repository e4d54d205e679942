"""Fuzz targets, one per parser that reads bytes from the network, with saved corpora.

    target      module          parser under test
    stun        fuzz_stun       hubbub.media.ice: the pre-check (peek_binding_request and the
                                MESSAGE-INTEGRITY check), parse_binding_request,
                                check_binding_request, the responses
    rtp         fuzz_rtp        hubbub.media.rtp: read_header, payload_offset, find_extension,
                                audio_level, read_extensions, rewrite_packet (Python and C
                                paths, which must agree byte for byte)
    rtcp        fuzz_rtcp       hubbub.media.rtcp: iter_compound, parse_compound (every packet
                                class), hubbub.sfu.rtcp_io: read_feedback, sender_reports
    sdp         fuzz_sdp        hubbub.media.sdp: parse, remote_credentials, build_answer
                                (publish and view) on every offer that parses
    signaling   fuzz_signaling  hubbub.control.messages: parse_command and the field readers

Each module's `one_input(data: bytes) -> None` is the whole harness: it feeds `data` to the
parser and swallows only the error types the parser documents (`EXPECTED`); anything else (a
TypeError, IndexError, RecursionError, an AssertionError from a consistency check) escapes and
is a finding. tests/test_fuzz_corpus.py replays every file of tests/fuzz/corpus/*/ through
every harness on each CI run (plain Python, no atheris), so a regression on a saved input fails
CI. Why here and not in a top-level fuzz/: CI's `ruff check src tests` lints these files with no
extra step, and the replay test imports them as `tests.fuzz.*` like any test helper.

Running the fuzzers (atheris, libFuzzer for CPython: `pip install atheris`; wheels exist for
CPython 3.11 on x86-64 Linux). From the repository root:

    python -m tests.fuzz.fuzz_rtp                      # until stopped, growing corpus/rtp
    python -m tests.fuzz.fuzz_rtp -max_total_time=3600 # an hour
    python -m tests.fuzz.fuzz_sdp -jobs=4 -workers=4   # four processes in parallel
    python -m tests.fuzz.fuzz_rtp path/to/crash-1234   # replay one input (e.g. a reproducer)

With no directory argument the target's corpus directory is used (tests/fuzz/corpus/<target>),
and -timeout=5 -rss_limit_mb=2048 -max_len=<target's> (and -dict=tests/fuzz/<target>.dict
where there is one: SDP lines, JSON keys) are added unless given. New inputs land in the first
directory; a crash writes crash-<sha1> (a hang timeout-<sha1>) in the current directory
(-artifact_prefix=DIR/ to put them elsewhere). To keep the committed corpus clean, fuzz into a
scratch directory and merge afterwards:

    python -m tests.fuzz.fuzz_sdp /tmp/sdp-new tests/fuzz/corpus/sdp -max_total_time=1800

The C forward path (hubbub._speedups.rewrite) is not instrumented: fuzz_rtp checks it against
the Python rewrite on every input, but coverage guidance only sees the Python side.

Keeping the corpus small before committing: libFuzzer's merge copies into the first directory
only the inputs that add coverage to what it holds, smallest first. Start it with the seed-*
files (valid packets and offers, made by `python -m tests.fuzz.seeds`) and any crash-*
reproducers, which always stay:

    mkdir /tmp/rtp-min && cp tests/fuzz/corpus/rtp/{seed,crash}-* /tmp/rtp-min/
    python -m tests.fuzz.fuzz_rtp -merge=1 /tmp/rtp-min tests/fuzz/corpus/rtp /tmp/rtp-new
    rm -r tests/fuzz/corpus/rtp && cp -r /tmp/rtp-min tests/fuzz/corpus/rtp

A reproducer of a bug goes in as corpus/<target>/crash-<name> and, until src/ is fixed, into
KNOWN_CRASHES in tests/test_fuzz_corpus.py (replayed as a strict xfail, so the fix flips it and
the entry must go).

Without atheris (any Python), `python -m tests.fuzz.harness <target> [seconds]` runs a simple
mutation loop over the corpus (bit flips, splices, truncations) and prints any failure; it
finds less than coverage-guided fuzzing but needs nothing installed.
"""
