"""Python client SDK on aiortc: Publisher and Viewer speaking hubbub's (Millicast's) protocol.

    async with Publisher(url, "stream", tracks=[ToneTrack(440)]) as pub: ...
    async with Viewer(url, "stream", multiplexed_audio_tracks=3) as viewer: ...

Test media (ToneTrack, PatternTrack, AudioRecorder, VideoCounter) is in hubbub.client.media,
tone analysis in hubbub.client.analysis, CLI command bodies in hubbub.client.commands.
"""

from hubbub.client.patches import use_loopback_only, use_mid_routing
from hubbub.client.publisher import Publisher
from hubbub.client.signaling import Signaling, SignalingError
from hubbub.client.viewer import Viewer

__all__ = [
    "Publisher",
    "Signaling",
    "SignalingError",
    "Viewer",
    "use_loopback_only",
    "use_mid_routing",
]
