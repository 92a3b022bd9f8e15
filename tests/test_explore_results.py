"""The explorer's verdicts and output: the Pareto front, acceptable and best settings, the plot."""

from matplotlib.text import Text

from lbnl_dask import explore_results as R


def rows_close_together():
    """Rows like a real grid's: several Pareto-front points close together."""
    rows = [
        dict(
            setting=n,
            codec=c,
            keep=k,
            ratio_raw2=x,
            cc=y,
            mean_ratio=m,
            background_ratio=1.0,
            i_sigma_ref=8.0,
            i_sigma_out=8.0,
        )  # fmt: skip
        for n, c, k, x, y, m in [
            ("b2s2", "none", 0, 24.0, 1.0, 1.0),
            ("b2s2h8", "H", 0, 24.5, 0.9995, 0.99),
            ("b2s2h8k5", "H", 5, 25.0, 0.9993, 1.0),
            ("b2s2h16", "H", 0, 26.0, 0.999, 0.98),
            ("b2s2h16k5", "H", 5, 26.5, 0.9989, 1.0),
            ("b2s2h32", "H", 0, 27.0, 0.998, 0.95),
            ("b2s2h64", "H", 0, 40.0, 0.995, 0.88),
            ("b2s2j60", "J", 0, 41.0, 0.96, 0.8),
            ("b1s2j60", "J", 0, 12.0, 0.9, 0.7),
        ]
    ]
    R.pareto(rows)
    return rows


def test_plot_labels_of_close_pareto_points_do_not_overlap():
    rows = rows_close_together()
    fig = R.plot(rows)
    ax = fig.axes[0]
    fig.canvas.draw()  # as savefig does: the labels take their final places
    renderer = fig.canvas.get_renderer()
    front = sorted(r["setting"] for r in rows if r["pareto"])
    assert len(front) == 8
    labels = [t for t in ax.texts if t.get_text() in front]
    assert sorted(t.get_text() for t in labels) == front
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    page = fig.bbox
    assert all(page.x0 <= b.x0 and b.x1 <= page.x1 for b in boxes)


def test_best_setting_needs_cc_and_mean_intensity_ratio():
    rows = rows_close_together()
    best = R.best_setting(rows)
    # b2s2h64 has the highest ratio with CC 0.995, but its intensities come back at 0.88
    assert best["setting"] == "b2s2h16k5"
    assert not R.acceptable(next(r for r in rows if r["setting"] == "b2s2h64"))
    good = dict(cc=1.0, mean_ratio=1.0, background_ratio=1.0, i_sigma_ref=8.0, i_sigma_out=8.0)
    assert R.acceptable(dict(good, cc=0.99, mean_ratio=0.98))
    assert R.acceptable(dict(good, mean_ratio=1.02, background_ratio=0.98, i_sigma_out=8.4))
    assert not R.acceptable(dict(good, cc=0.9899))
    assert not R.acceptable(dict(good, mean_ratio=1.021))
    assert not R.acceptable(dict(good, cc=float("nan"), mean_ratio=float("nan")))
    # the background and I/sigma count too: a biased background changes the weak reflections
    assert not R.acceptable(dict(good, background_ratio=1.37))
    assert not R.acceptable(dict(good, background_ratio=0.67))
    assert not R.acceptable(dict(good, i_sigma_out=7.5))  # -6%
    assert not R.acceptable({k: v for k, v in good.items() if k != "background_ratio"})
    assert R.best_setting([dict(good, setting="x", cc=0.5, ratio_raw2=9)]) is None
    # every resolution shell counts: a good whole hiding a weak shell is not acceptable
    assert R.acceptable(dict(good, shells=[good, good]))
    assert not R.acceptable(dict(good, shells=[good, dict(good, mean_ratio=0.95)]))
    assert not R.acceptable(dict(good, shells=[dict(good, background_ratio=1.1), good]))
    assert not R.acceptable(dict(good, shells=[good, dict(good, cc=0.97)]))
    assert R.describe_best(rows).startswith("best: b2s2h16k5 (ratio 26.5x")
    # reflections the output lost (a pixel of their box made invalid): at most 2%
    assert R.acceptable(dict(good, lost=0.02)) and not R.acceptable(dict(good, lost=0.021))
    assert R.acceptable(dict(good, lost=float("nan")))  # no strong reflection: the rest judge


def test_best_setting_is_one_xds_reads():
    """-c sz3 rows (``xds`` False) are judged, but named best only beside the best XDS reads."""
    good = dict(cc=1.0, mean_ratio=1.0, background_ratio=1.0, i_sigma_ref=8.0, i_sigma_out=8.0)
    rows = [
        dict(good, setting="b2s2h8", ratio_raw2=30.0, xds=True),
        dict(good, setting="b2s2sf2", ratio_raw2=60.0, xds=False),
        dict(good, setting="b2s2", ratio_raw2=25.0),
    ]  # fmt: skip  (an older table's row)
    assert R.best_setting(rows)["setting"] == "b2s2h8"
    assert R.best_setting(rows, xds=False)["setting"] == "b2s2sf2"
    line = R.describe_best(rows)
    assert line.startswith("best: b2s2h8 (ratio 30.0x")
    assert line.endswith("higher, but not read by XDS' Neggia: b2s2sf2 (60.0x)")
    line = R.describe_best(rows[1:2])
    assert line.startswith("best: none of the settings XDS reads") and "b2s2sf2" in line
    assert "Neggia" not in R.describe_best(rows[:1])


def test_plot_draws_sz3_filter_rows():
    good = dict(cc=1.0, mean_ratio=1.0, background_ratio=1.0, i_sigma_ref=8.0, i_sigma_out=8.0)
    rows = [dict(good, setting="b2s2", codec="none", keep=0, ratio_raw2=20.0),
            dict(good, setting="b2s2sf2", codec="SF", keep=0, ratio_raw2=40.0)]  # fmt: skip
    R.pareto(rows)
    labels = R.plot(rows).axes[0].get_legend_handles_labels()[1]
    assert "SZ3's own filter (-c sz3)" in labels and "lossless" in labels


def test_pareto_front():
    rows = [
        dict(ratio_raw2=10, cc=1.0),
        dict(ratio_raw2=20, cc=0.99),
        dict(ratio_raw2=15, cc=0.98),
        dict(ratio_raw2=30, cc=float("nan")),
    ]
    R.pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, False]
    # two lossless settings: a CC of 0.9999999999999999 is 1.0, the higher ratio alone wins
    ties = [dict(ratio_raw2=54.7, cc=1.0), dict(ratio_raw2=82.7, cc=0.9999999999999999)]
    R.pareto(ties)
    assert [r["pareto"] for r in ties] == [False, True]


def test_csv_rows_carry_the_verdict_and_the_worst_shell(tmp_path):
    import csv

    good = dict(cc=1.0, mean_ratio=1.0, background_ratio=1.0, i_sigma_ref=8.0, i_sigma_out=8.0)
    shells = [good, dict(good, cc=0.97, mean_ratio=0.96), dict(good, mean_ratio=1.01,
              background_ratio=1.05, i_sigma_out=7.0)]  # fmt: skip
    rows = [dict(good, setting="b2s2h8", codec="H", keep=0, ratio_raw2=30.0, shells=shells),
            dict(good, setting="b2s2", codec="none", keep=0, ratio_raw2=20.0)]  # fmt: skip
    R.pareto(rows)
    R.save(rows, str(tmp_path / "ex"))
    with open(tmp_path / "ex.csv", newline="") as fh:
        got = {r["setting"]: r for r in csv.DictReader(fh)}
    h8, plain = got["b2s2h8"], got["b2s2"]
    assert h8["acceptable"] == "False" and plain["acceptable"] == "True"
    assert h8["shells"] == "3" and float(h8["worst_shell_cc"]) == 0.97
    assert float(h8["worst_shell_mean_ratio"]) == 0.96  # farthest from 1, low or high
    assert float(h8["worst_shell_background_ratio"]) == 1.05
    assert float(h8["worst_shell_i_sigma_ratio"]) == 7.0 / 8.0
    assert plain["shells"] == "0" and plain["worst_shell_cc"] == "nan"


def test_describe_gain_notes_a_best_setting_close_to_lossless():
    """At a high background the best acceptable setting is barely above lossless storage of
    its bin and sum: the explorer says so, and points at larger sums when none was tried."""
    good = dict(cc=1.0, mean_ratio=1.0, background_ratio=1.0, i_sigma_ref=8.0, i_sigma_out=8.0)

    def row(name, codec, s, ratio, **kw):
        return dict(good, setting=name, codec=codec, bin=2, sum=s, ratio_raw2=ratio, **kw)

    rows = [row("b2s4", "none", 4, 53.0), row("b2s4h64k3", "H", 4, 57.8),
            row("b2s4h64", "H", 4, 78.0, cc=0.98)]  # fmt: skip
    note = R.describe_gain(rows)
    assert note.startswith("note: b2s4h64k3 reaches 1.09 times the ratio of lossless b2s4 (53.0x)")
    assert "--sums 8 16" in note
    # a larger sum was tried (and failed): no suggestion of one, the note stays
    failed = row("b2s8h64", "H", 8, 130.0, mean_ratio=0.9)
    assert "--sums" not in R.describe_gain([*rows, failed])
    # a gain just below 1.25 is not printed as 1.25 (the rule is "less than 1.25")
    near = R.describe_gain([rows[0], row("b2s4h64k5", "H", 4, 53.0 * 1.248)])
    assert "reaches 1.248 times the ratio" in near
    nearer = R.describe_gain([rows[0], row("b2s4h64k5", "H", 4, 53.0 * 1.2496)])
    assert "reaches 1.249 times the ratio" in nearer  # (1.250 would read as the threshold)
    # a lossy step worth its name: no note
    assert R.describe_gain([rows[0], row("b2s4h64k5", "H", 4, 74.3)]) is None
    # the best is lossless itself: said as it is, tried lossy steps or none
    failing = [rows[0], row("b2s4h64", "H", 4, 78.0, cc=0.98)]
    note = R.describe_gain(failing)
    assert note.startswith("note: lossless b2s4 (53.0x) is the best: none of the lossy "
                           "settings tried there was acceptable")  # fmt: skip
    assert "(try --keep 0 3)" in note  # no --keep tried at all: worth a try
    with_keep = [rows[0], row("b2s4h64k5", "H", 4, 78.0, cc=0.98, keep=5)]
    assert "--keep-spots at a low threshold keeps weaker reflections exactly" in R.describe_gain(
        with_keep)  # fmt: skip
    low = [rows[0], row("b2s4h64k3", "H", 4, 78.0, cc=0.98, keep=3)]
    assert "--keep 0 3" not in R.describe_gain(low)  # tried already
    stored_larger = [rows[0], row("b2s4h12k5", "H", 4, 49.0, keep=5)]
    assert "--keep 0 3" not in R.describe_gain(stored_larger)  # keeping more: larger still
    assert "no lossy step was tried there" in R.describe_gain(rows[:1])
    # acceptable lossy settings that store it larger: not "none was acceptable" (it said so)
    larger = [rows[0], row("b2s4h12", "H", 4, 49.0)]
    assert R.describe_gain(larger).startswith("note: lossless b2s4 (53.0x) is the best: the "
                                              "acceptable lossy settings tried there store it "
                                              "larger")  # fmt: skip
    # sums the dataset cannot hold are not suggested
    short = [dict(r, dataset_frames=10) for r in rows]
    assert "--sums 8" in R.describe_gain(short) and "--sums 8 16" not in R.describe_gain(short)
    assert "--sums" not in R.describe_gain([dict(r, dataset_frames=7) for r in rows])
    # nothing acceptable, or no lossless row of the best's bin and sum: nothing to say
    assert R.describe_gain([row("b2s4h64", "H", 4, 78.0, cc=0.98)]) is None
    assert R.describe_gain(rows[1:2]) is None


def test_describe_short_windows_when_the_data_hold_few_output_frames():
    rows = [dict(setting="b2s32", sum=32, window_frames=32), dict(setting="b2s2", sum=2,
            window_frames=32)]  # fmt: skip
    note = R.describe_short_windows(rows)
    assert note.startswith("note: windows of 32 frames give 1 output frame(s) at -s 32")
    assert R.describe_short_windows([dict(r, window_frames=128) for r in rows]) is None
    assert R.describe_short_windows([{"setting": "old table", "sum": 2}]) is None


def test_describe_windows_when_fewer_were_taken_than_asked():
    row = dict(setting="b2s2", windows=2, windows_asked=5, window_frames=20, dataset_frames=40)
    assert R.describe_windows([row]) == ("note: 2 window(s) of 20 frames, not the 5 asked: "
                                         "more would overlap in 40 frames")  # fmt: skip
    assert R.describe_windows([dict(row, windows=5)]) is None
    assert R.describe_windows([{"setting": "old table"}]) is None
