# The hardware layer: one interface, chosen at start-up, so that nothing else imports
# `machine` or `network`. esp32: the board's PWM, ADC, pins, watchdog and Wi-Fi. unix: the
# same interface backed by the host plant simulator over loopback UDP.
#
# A Board offers:
#   set_duty(duty)          pilot duty in 0.01 % (pilot.DUTY_FULL = 100 %: no offer)
#   set_contactor(closed)   the main contactor's coil
#   set_phase_relay(one)    the 3->1 phase relay (True: one phase)
#   set_led(on)             the unit's LED (it blinks while the installer identifies it)
#   pair_button()           True while the pair button is held
#   sample_pilot()          (high_mv, low_mv): the pilot's two levels as the car loads them
#   measure()               (l1_ma, l2_ma, l3_ma, energy_wh), or None without a meter
#   start_watchdog(ms) / feed()
#   keepalive()             called every period (the simulated board repeats its outputs)
#   run()                   a coroutine taking in what arrives from outside (the simulator)


def board(settings):
    """The board the settings name: the leader drives no pilot, only the watchdog."""
    pilot = settings["role"] == "follower"
    if settings["hal"] == "esp32":
        from ampshare.hal.esp32 import Board
        return Board(settings["pins"], pilot=pilot)
    from ampshare.hal.unix import Board  # type: ignore[no-redef]  # unix.py is not checked
    return Board(settings["plant"], settings["plant_id"] if pilot else None, settings["stall_at_ms"])
