"""Test helpers shared by every test tier: real `hubbub serve` processes and headless Chromium.

Import them as `from tests.helpers.server import start_server` and
`from tests.helpers.browser import PageFactory` (`tests/` is a package; pytest puts the repository
root on `sys.path`).
"""
