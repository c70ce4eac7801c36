"""Generated sites in the twin: the three invariants at every step. A file of its own, so that
make test's two workers share the twin's runs (a file stays on one worker)."""
import os

from hypothesis import HealthCheck, given, settings

from scenarios import scenarios
from test_twin import assert_safe, twin

# make test runs 150 generated sites for 240 s each; make soak more, and longer.
GENERATED = int(os.environ.get("AMPSHARE_SOAK_EXAMPLES", 150))
GENERATED_S = int(os.environ.get("AMPSHARE_SOAK_S", 240))


@settings(max_examples=GENERATED, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(duration_s=GENERATED_S))
def test_random_scenarios_keep_every_invariant(vm, scn):
    assert_safe(twin(vm, scn)["summary"])
