"""make mutants: break the safety code on purpose, one named way at a time, and check that the
tests notice. Each mutant is one textual change to a copy of the tree (lib, tests, tools,
examples); the tests that guard it run there (stopping at the first failure). A mutant the
tests let through "survived": the table says which, and the command fails.

    python3 tools/mutants.py [NAME ...]      all mutants, or those named
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = "lib/ampshare/"

TWIN = "tests/test_twin.py"
EXAMPLES = TWIN + "::test_example_scenarios_keep_every_invariant"
RANDOM = "tests/test_twin_generated.py::test_random_scenarios_keep_every_invariant"
PROPS = "tests/test_allocator_properties.py"
CASE = TWIN + "::test_sites_that_once_broke_a_rule_keep_every_invariant[%s]"

# (name, file, text as it is, text in the mutant, the tests that must catch it)
MUTANTS = [
    ("fallbacks-on-narrowed-phases", LIB + "core/allocator.py",
     "        self._end, self._m = self._wend, self._wmask\n", "",
     [PROPS + "::test_cars_past_their_first_minute_overload_no_fuse_on_the_phases_they_draw"]),
    ("no-wait-before-an-increase", LIB + "core/leader.py",
     "        grant = p + self.budget.room(c, target - p)\n", "        grant = target\n",
     [EXAMPLES]),
    ("room-never-below-permitted", LIB + "core/leader.py",
     "        grant = p + self.budget.room(c, target - p)\n",
     "        grant = p + max(0, self.budget.room(c, target - p))\n",
     ["tests/test_leader.py::test_an_adopted_follower_counts_at_its_maximum_for_the_evs_5_s"]),
    ("no-5-s-for-the-car", LIB + "core/leader.py",
     "            self.freed_at[c] = ticks_add(now_ms, EV_FOLLOW_MS) | 1\n        if fb <=",
     "            self._free(c)\n        if fb <=",
     ["tests/test_leader.py::test_an_increase_waits_5_s_after_the_decrease_was_taken_whatever_the_car_draws"]),
    ("adopted-without-the-5-s-hold", LIB + "core/leader.py",
     "max(applied, self._drawn(c), self.site.cmax[c])", "max(applied, self._drawn(c))",
     ["tests/test_leader.py::test_an_adopted_follower_counts_at_its_maximum_for_the_evs_5_s"]),
    ("unmeasured-credited-its-offer", LIB + "core/allocator.py",
     "    if measured < 0:\n        return 0\n", "    if measured < 0:\n        return held\n",
     ["tests/test_leader.py::test_a_car_that_measures_nothing_is_credited_no_draw_on_the_meter"]),
    ("unknown-wiring-credit-kept-when-lowered", LIB + "core/allocator.py",
     "                if cred[c] > out[c]:\n", "                if False:\n",
     ["tests/test_allocator_examples.py::test_a_charger_of_unknown_wiring_given_less_than_it_draws_frees_nothing_elsewhere"]),
    ("unknown-wiring-narrowed-before-settled", LIB + "core/allocator.py",
     "                m = self.narrow[c] if n == 3 else 1\n", "                m = (self.narrow[c] or 1) if n == 3 else 1\n",
     ["tests/test_allocator_examples.py::test_a_narrowed_car_of_unknown_wiring_is_credited_once_settled"]),
    ("silent-share-released-early", LIB + "core/leader.py",
     "_LOST_MS = const(16_000)", "_LOST_MS = const(6_000)",
     ["tests/test_leader.py::test_a_silent_followers_share_stays_reserved_until_it_must_have_fallen_back"]),
    ("unheard-off-unit-not-reserved", LIB + "core/leader.py",
     "a.held[c] = site.cmax[c] if self.paired[c] else 0",
     "a.held[c] = site.cmax[c] if self.paired[c] and site.cmode[c] != 3 else 0",
     ["tests/test_leader.py::test_a_paired_unit_not_yet_heard_is_reserved_at_its_maximum_even_if_off"]),
    ("credit-only-up-to-the-last-offer", LIB + "core/leader.py",
     "                a.offered[c] = self.permitted[c]\n", "                a.offered[c] = self.sent[c]\n",
     [TWIN + "::test_a_step_followed_by_the_car_is_not_answered_twice"]),
    ("stale-draw-credited-for-increases", LIB + "core/leader.py",
     "            a.fresh[c] = s == ONLINE and ticks_diff(now_ms, self.heard[c]) < _FRESH_MS\n",
     "            a.fresh[c] = 1\n",
     ["tests/test_leader.py::test_an_increase_never_counts_on_a_draw_not_reported_lately"]),
    ("a-live-phase-waits-for-the-period", LIB + "core/leader.py",
     "            self._due = now_ms  # a phase came alive: counted on its fuses at once\n", "",
     ["tests/test_leader.py::test_a_phase_that_comes_alive_again_is_allocated_at_once"]),
    ("uncounted-phases-not-told", LIB + "core/leader.py",
     "                flags |= 1 << (link.UNCOUNTED_SHIFT + k)\n", "",
     ["tests/test_leader.py::test_a_narrowed_charger_is_told_which_of_its_phases_are_not_counted"]),
    ("new-car-charges-on-an-old-count", LIB + "core/follower.py",
     "self._new_car = self.uncounted & self._live() != 0", "self._new_car = False",
     ["tests/test_follower.py::test_a_new_car_waits_for_a_command_that_counts_every_phase"]),
    ("fallback-make-before-break-dropped", LIB + "core/leader.py",
     "            if not self.budget.fallback_fits(c, more):\n                return\n", "",
     ["tests/test_leader.py::test_a_higher_fallback_waits_until_the_lower_one_is_taken"]),
    ("replayed-command-accepted", LIB + "wire/frame.py",
     "epoch < e or (epoch == e and seq <= self.seq[i])", "epoch < e or (epoch == e and seq < self.seq[i])",
     ["tests/test_protocol.py"]),
    ("old-epoch-command-accepted", LIB + "wire/follower.py",
     "            raise P.Rejected(P.R_EPOCH)  # addressed to an earlier boot of ours\n", "",
     ["tests/test_protocol.py"]),
    ("forged-tag-accepted", LIB + "wire/frame.py", "        if diff:\n            raise Rejected(_R_AUTH)",
     "        if False:\n            raise Rejected(_R_AUTH)",
     ["tests/test_protocol.py"]),
    ("stale-meter-treated-as-fresh", LIB + "core/leader.py",
     "                self.alloc.meter_ok[m] = 0\n", "",
     ["tests/test_leader.py::test_a_silent_meter_counts_its_reserve_after_5_s"]),
    ("duty-rounded-up", LIB + "core/pilot.py", "return min(ma // 6, _KNEE_DUTY)", "return min((ma + 5) // 6, _KNEE_DUTY)",
     ["tests/test_follower.py::test_duty_never_offers_more_and_never_below_the_minimum"]),
    ("pause-below-6-a-offered", LIB + "core/pilot.py", "    if ma < MIN_MA:\n        return DUTY_FULL",
     "    if ma < 1000:\n        return DUTY_FULL",
     ["tests/test_follower.py::test_duty_never_offers_more_and_never_below_the_minimum"]),
    ("watchdog-without-ticks-diff", LIB + "core/follower.py",
     "ticks_diff(now_ms, self.last_cmd) >= WATCHDOG_MS", "now_ms - self.last_cmd >= WATCHDOG_MS",
     [TWIN + "::test_the_board_clock_wrapping_mid_run_changes_nothing"]),
    ("follower-watchdog-20-s", LIB + "core/follower.py", "WATCHDOG_MS = const(10_000)", "WATCHDOG_MS = const(20_000)",
     [TWIN + "::test_followers_fall_back_within_10_s_of_losing_the_leader"]),
    ("unbalance-recheck-dropped", LIB + "core/allocator.py",
     "            self._balance()  # the re-share may admit one onto a high phase: lowering only\n", "",
     ["tests/test_unbalance.py::test_a_charger_the_re_share_admits_does_not_unbalance_again"]),
    ("external-limit-above-the-fuse", LIB + "core/allocator.py",
     "cap[k] = (x if 0 <= x < lim else lim) - e", "cap[k] = (x if 0 <= x else lim) - e",
     ["tests/test_external.py"]),
    ("priority-ignored-by-the-exchange", LIB + "core/allocator.py",
     "            if i + 1 == self.nc or prio[order[i + 1]] != prio[c]:",
     "            if i + 1 == self.nc:",
     [PROPS + "::test_a_high_priority_charger_is_not_paused_for_two_of_lower_priority"]),
    ("exchange-never-runs", LIB + "core/allocator.py",
     "                if paused > 1 and not self._uniform(i0, i + 1):",
     "                if paused > 1 and not self._uniform(i0, i + 1) and False:",
     ["tests/test_allocator_examples.py::test_one_charger_pauses_so_that_two_of_the_same_priority_run"]),
    ("exchange-judged-on-the-wiring-alone", LIB + "core/allocator.py",
     "order, hi, m = self._order, self._hi, self._m\n",
     "order, hi, m = self._order, self._hi, self._wmask\n",
     ["tests/test_allocator_examples.py::test_the_fewest_pause_also_once_cars_draw_on_fewer_phases"]),
    ("falls-reported-late", LIB + "core/follower.py", "REPORT_FALL_MA = const(300)", "REPORT_FALL_MA = const(1_000)",
     ["tests/test_follower.py::test_a_small_fall_is_reported_at_once_a_rise_only_from_1_a"]),
    ("meter-rise-waits-for-the-period", LIB + "core/leader.py",
     "        now = not a.meter_ok[m] or l1 > r1 or l2 > r2 or l3 > r3 or \\\n",
     "        now = not a.meter_ok[m] or \\\n",
     ["tests/test_leader.py::test_a_small_rise_is_answered_at_once"]),
    ("phases-counted-before-room", LIB + "core/leader.py",
     "        used = self.counted[c]\n", "        used = self.alloc.in_use(c)\n",
     ["tests/test_leader.py::test_a_new_car_is_told_its_phases_are_counted_only_once_the_others_have_made_room",
      CASE % "phases-counted-before-room"]),
    ("increase-room-over-two-seconds", LIB + "core/budget.py",
     "_WINDOWS = const(3)", "_WINDOWS = const(2)", [CASE % "late-report-beside-a-stop"]),
    ("stale-meter-credited-for-increases", LIB + "core/leader.py",
     "            a.meter_fresh[m] = ticks_diff(now_ms, self.meter_at[m]) < _FRESH_MS\n",
     "            a.meter_fresh[m] = 1\n",
     ["tests/test_leader.py::test_an_increase_never_counts_on_a_meter_reading_not_taken_lately"]),
    ("fallback-rises-at-once", LIB + "core/follower.py",
     "FALLBACK_RISE_MS = const(7_000)", "FALLBACK_RISE_MS = const(0)",
     ["tests/test_follower.py::test_a_new_car_waiting_for_its_count_takes_the_fallback_once_the_leader_is_gone",
      CASE % "fallback-rise-beside-falling-cars"]),
    ("new-leader-skips-the-fallback-wait", LIB + "core/follower.py",
     "        if self._fallen_at is not None and ticks_diff(now_ms, self._fallen_at) < FALLBACK_RISE_MS:\n",
     "        if self.at_fallback and self._fallen_at is not None and "
     "ticks_diff(now_ms, self._fallen_at) < FALLBACK_RISE_MS:\n",
     ["tests/test_follower.py::test_a_new_leaders_command_waits_out_the_fallbacks_7_s_too",
      CASE % "new-leader-beside-falling-cars"]),
    ("confirmed-by-an-older-report", LIB + "wire/leader.py",
     "self._reflects(c, data))", "True)",
     ["tests/test_leader.py::test_a_report_made_before_the_decrease_was_taken_confirms_nothing"]),
    ("narrowed-before-the-follower-knew", LIB + "core/leader.py",
     "            elif reflects:\n                a.use_phases(c, goal)", "            elif True:\n                a.use_phases(c, goal)",
     ["tests/test_leader.py::test_a_charger_is_counted_on_fewer_phases_only_once_its_follower_was_told"]),
    ("narrowed-at-once", LIB + "core/leader.py",
     "        elif goal != cur:\n", "        elif goal != cur:\n            a.use_phases(c, goal)\n",
     [CASE % "narrowed-before-the-follower-knew"]),
    ("switching-charger-narrowed-at-once", LIB + "core/leader.py",
     "self._count_on(now_ms, c, self.alloc.phases_for(c, s.mask(c, self._dmask[c])), False)",
     "self.alloc.use_phases(c, s.mask(c, self._dmask[c]))",
     ["tests/test_leader.py::test_a_switching_charger_too_is_counted_on_fewer_phases_only_once_told"]),
    ("second-unit-for-a-paired-charger", LIB + "run/leader.py",
     "        if held is not None and held != uid:\n", "        if False:\n",
     ["tests/test_web.py::test_a_unit_heard_is_paired_from_the_page"]),
    ("sharing-switch-ignored", LIB + "core/allocator.py",
     " and self.sharing and not self.off[c] and \\\n", " and not self.off[c] and \\\n",
     ["tests/test_leader.py::test_with_sharing_off_nobody_is_offered_current_nor_a_fallback"]),
    ("unpaired-unit-not-stopped", LIB + "core/allocator.py",
     " and self.sharing and not self.off[c] and \\\n", " and self.sharing and \\\n",
     ["tests/test_leader.py::test_an_unpaired_unit_is_forgotten_only_once_it_holds_nothing_and_its_car_followed"]),
    ("parked-car-that-asks-kept-parked", LIB + "core/demand.py",
     "        self.alloc.parked[c] = 0  # it asks: its share again\n", "",
     ["tests/test_demand.py::test_a_parked_car_that_asks_has_its_share_at_once"]),
    ("probe-hold-shorter-than-a-car-follows", LIB + "core/demand.py",
     "_PROBE_HOLD_MS = const(20_000)", "_PROBE_HOLD_MS = const(3_000)",
     ["tests/test_demand.py::test_a_car_that_wakes_and_follows_its_pilot_as_slowly_as_allowed_climbs_to_its_share"]),
    ("unpaired-unit-forgotten-before-its-car-followed", LIB + "core/leader.py",
     "self.alloc.off[c] and self.permitted[c] == 0 and", "self.alloc.off[c] and",
     ["tests/test_leader.py::test_an_unpaired_unit_is_forgotten_only_once_it_holds_nothing_and_its_car_followed"]),
    ("stale-retained-meter-reading-taken", LIB + "mqtt/client.py",
     "        if rd.retain and not self._retained:\n", "        if False:\n",
     ["tests/test_mqtt_client.py::test_a_retained_message_from_before_the_subscription_is_dropped_and_counted",
      "tests/test_mqtt.py::test_mqtt_meter_and_timeout"]),
]


def apply(tree, path, old, new):
    f = tree / path
    text = f.read_text()
    if text.count(old) != 1:
        raise SystemExit("mutant does not apply to %s: %r (found %d times)" % (path, old, text.count(old)))
    f.write_text(text.replace(old, new))


def scratch():
    tree = Path(tempfile.mkdtemp(prefix="ampshare-mutant-"))
    for part in ("lib", "tests", "tools", "examples", "pytest.ini"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tree / part)
    os.symlink(ROOT / ".venv", tree / ".venv")
    (tree / "build").mkdir()
    os.symlink(ROOT / "build" / "vendor", tree / "build" / "vendor")  # Microdot, as make installed it
    return tree


def run(tree, tests):
    env = dict(os.environ, MICROPYTHON=str(ROOT / ".venv" / "bin" / "micropython"), AMPSHARE_HYPOTHESIS="mutants")
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "pytest"), "-x", "-q", "-p", "no:cacheprovider"] + tests,
                          cwd=tree, env=env, capture_output=True, text=True)
    return proc.returncode


def main(argv):
    chosen = [m for m in MUTANTS if not argv[1:] or m[0] in argv[1:]]
    survived = []
    print("%-38s %-10s %s" % ("mutant", "result", "seconds"))
    for name, path, old, new, tests in chosen:
        tree = scratch()
        try:
            apply(tree, path, old, new)
            t0 = time.monotonic()
            code = run(tree, tests)
            took = time.monotonic() - t0
        finally:
            shutil.rmtree(tree)
        # pytest exits 1 when a test failed: the mutant is killed. 0 is a survivor; anything
        # else (no tests collected, an error) is reported as such.
        result = {0: "SURVIVED", 1: "killed"}.get(code, "error %d" % code)
        if code != 1:
            survived.append(name)
        print("%-38s %-10s %.0f" % (name, result, took), flush=True)
    print("%d mutants, %d killed" % (len(chosen), len(chosen) - len(survived)))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
