"""The live suite runs against a real Asterisk 22, and only when told where it is.

``PBX_TEST_AMI_URL=ami://user:secret@host:port`` enables it (the AMI user needs read
``agent,call`` and write ``agent``; write ``system`` lets the bridge install its event filter).
``PBX_TEST_AMI_QUEUE=<queue>`` also enables the add/pause/remove round trip on that queue with a
``Local/`` test member that is removed again afterwards; no particular dialplan is needed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.config import AmiUrl, parse_ami_url

LIVE_URL = os.environ.get("PBX_TEST_AMI_URL", "")
SKIP_REASON = "live Asterisk suite: set PBX_TEST_AMI_URL=ami://user:secret@host:port to run it"
CONFIG_DIR_ENV = "PBX_TEST_ASTERISK_CONFIG_DIR"
# A plain session for actions and Command (no resync, no filter), patient with a real PBX.
ACTION_OPTIONS = AmiOptions(resync_on_connect=False, event_filter=False, action_timeout_s=20.0)


@pytest.fixture
def ami_url() -> AmiUrl:
    return parse_ami_url(LIVE_URL, "PBX_TEST_AMI_URL")


@pytest.fixture
def live_queue() -> str:
    queue = os.environ.get("PBX_TEST_AMI_QUEUE", "")
    if not queue:
        pytest.skip("set PBX_TEST_AMI_QUEUE=<queue> to run the member round trip on that queue")
    return queue


@pytest.fixture
def config_dir() -> Path:
    """The directory the Asterisk under test reads as /etc/asterisk/pbx-core (provisioning)."""
    value = os.environ.get(CONFIG_DIR_ENV, "")
    if not value:
        pytest.skip(f"set {CONFIG_DIR_ENV} to the directory Asterisk reads as /etc/asterisk/pbx-core")
    path = Path(value)
    assert path.is_dir(), f"{CONFIG_DIR_ENV}={value} is not a directory"
    return path


@pytest.fixture
async def ami(ami_url: AmiUrl) -> AsyncIterator[AmiClient]:
    async with AmiClient(ami_url, ACTION_OPTIONS) as client:
        yield client
