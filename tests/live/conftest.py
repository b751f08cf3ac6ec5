"""The live suite runs against a real Asterisk 22, and only when told where it is.

``PBX_TEST_AMI_URL=ami://user:secret@host:port`` enables it (the AMI user needs read
``agent,call`` and write ``agent``; write ``system`` lets the bridge install its event filter).
``PBX_TEST_AMI_QUEUE=<queue>`` also enables the add/pause/remove round trip on that queue with a
``Local/`` test member that is removed again afterwards; no particular dialplan is needed.
"""

from __future__ import annotations

import os

import pytest

from pbx_core.config import AmiUrl, parse_ami_url

LIVE_URL = os.environ.get("PBX_TEST_AMI_URL", "")
SKIP_REASON = "live Asterisk suite: set PBX_TEST_AMI_URL=ami://user:secret@host:port to run it"


@pytest.fixture
def ami_url() -> AmiUrl:
    return parse_ami_url(LIVE_URL, "PBX_TEST_AMI_URL")


@pytest.fixture
def live_queue() -> str:
    queue = os.environ.get("PBX_TEST_AMI_QUEUE", "")
    if not queue:
        pytest.skip("set PBX_TEST_AMI_QUEUE=<queue> to run the member round trip on that queue")
    return queue
