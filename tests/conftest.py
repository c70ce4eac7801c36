import pytest

from vm import VM


@pytest.fixture(scope="session")
def vm():
    worker = VM()
    yield worker
    worker.close()
