import pytest
from hypothesis import settings

from vm import VM

# Every run tries the same examples: a red CI can be replayed exactly, and a green one stays
# green until the code or the tests change. Each test's own settings add to this profile.
settings.register_profile("seeded", derandomize=True, database=None)
settings.load_profile("seeded")


@pytest.fixture(scope="session")
def vm():
    worker = VM()
    yield worker
    worker.close()
