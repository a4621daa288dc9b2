from core.backoff import Backoff


def test_delays_double_from_half_a_second_up_to_ten_seconds_without_jitter():
    backoff = Backoff(random=lambda: 0.5)  # the middle of the jitter range: the nominal delay
    assert [backoff.next_delay() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_jitter_keeps_each_delay_within_twenty_percent_of_the_nominal_one():
    low, high = Backoff(random=lambda: 0.0), Backoff(random=lambda: 1.0)
    assert [round(low.next_delay(), 6) for _ in range(3)] == [0.4, 0.8, 1.6]
    assert [round(high.next_delay(), 6) for _ in range(3)] == [0.6, 1.2, 2.4]


def test_reset_starts_again_from_the_first_delay():
    backoff = Backoff(random=lambda: 0.5)
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5
