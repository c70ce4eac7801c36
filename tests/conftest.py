import os

import pytest
from hypothesis import Phase, settings

from vm import VM

# Every run tries the same examples: a red CI can be replayed exactly, and a green one stays
# green until the code or the tests change. Each test's own settings add to this profile.
settings.register_profile("seeded", derandomize=True, database=None)
# make soak: fresh examples on every run (Hypothesis prints how to reproduce a failure).
settings.register_profile("soak", derandomize=False, database=None, print_blob=True)
# make mutants: the first failure kills a mutant; shrinking it would only cost time.
settings.register_profile("mutants", derandomize=True, database=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("AMPSHARE_HYPOTHESIS", "seeded"))


@pytest.fixture(scope="session")
def vm():
    # The suite's worker runs whole twin days and long traces in one process: room to spare
    # (the board's own heap is measured by make bench-mem, in processes of their own).
    worker = VM(heap="16M")
    yield worker
    worker.close()
