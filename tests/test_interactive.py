"""The book's widget controls call the experiment with the sliders' values, when they should."""
import ipywidgets as widgets

from asyncrl_lab.book.interactive import show_controls


def test_run_button_calls_the_experiment_with_the_slider_values():
    calls = []
    workers = widgets.IntSlider(min=1, max=4, value=2)
    box = show_controls(lambda **kw: calls.append(kw), run_button=True, workers=workers,
                        t_max=widgets.IntSlider(min=1, max=50, value=20))
    assert calls == []  # nothing runs until the reader presses Run
    workers.value = 3
    assert calls == []
    button = box.children[0].children[-1]
    assert isinstance(button, widgets.Button)
    button.click()
    assert calls == [{"workers": 3, "t_max": 20}]


def test_live_sliders_call_the_experiment_on_every_change():
    calls = []
    n_actors = widgets.SelectionSlider(options=[1, 2, 4], value=1)
    show_controls(lambda **kw: calls.append(kw), run_button=False, n_actors=n_actors)
    assert calls == []
    n_actors.value = 4
    assert calls == [{"n_actors": 4}]
