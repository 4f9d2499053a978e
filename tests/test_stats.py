from neurolink.stats import ClockOffset, Ring


def test_clock_offset_prefers_lowest_rtt():
    c = ClockOffset()
    true = 2.5  # sender clock = receiver clock + 2.5 s
    # (forward delay, return delay): asymmetric slow samples bias the estimate; the fast one does not
    for fwd, back in [(0.010, 0.001), (0.0002, 0.0002), (0.003, 0.0001), (0.0001, 0.004)]:
        t0 = 100.0
        t1 = t0 + fwd + true
        t2 = t1 + 0.00005
        t3 = t2 - true + back
        c.add(t0, t1, t2, t3)
    assert abs(c.offset - true) < 1e-9
    assert abs(c.rtt - 0.0004) < 1e-9


def test_ring_percentiles():
    r = Ring(4)
    for v in range(10):
        r.add(v)
    assert sorted(r.values()) == [6, 7, 8, 9] and r.pct(100) == 9
