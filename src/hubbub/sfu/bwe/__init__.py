"""Send-side downlink bandwidth estimation per viewer (issue 17): transport-cc feedback into a
delay- and loss-based estimate in the spirit of draft-ietf-rmcat-gcc-02, REMB as a fallback or cap,
and probing so a layer selector can check a higher rate before taking it."""

from hubbub.sfu.bwe.delay import DelayDetector, Usage
from hubbub.sfu.bwe.estimator import BweConfig, DownlinkEstimator
from hubbub.sfu.bwe.loss import LossController
from hubbub.sfu.bwe.probe import ProbeCluster, ProbeResult
from hubbub.sfu.bwe.rate import AimdRateController, RateState
from hubbub.sfu.bwe.send_history import AckedBitrate, SendHistory

__all__ = [
    "AckedBitrate",
    "AimdRateController",
    "BweConfig",
    "DelayDetector",
    "DownlinkEstimator",
    "LossController",
    "ProbeCluster",
    "ProbeResult",
    "RateState",
    "SendHistory",
    "Usage",
]
