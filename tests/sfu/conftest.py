from tests.sfu import _media_fallback

_media_fallback.install()
