"""ipywidgets controls for the book's chapters.

In Jupyter a control shows sliders (and a Run button when each change costs a training run); in
the static HTML book, where widgets cannot run, the same output shows a note instead, and the
chapter shows a figure of a run it made right after it.
"""
from __future__ import annotations

import ipywidgets as widgets
from IPython.display import display

STATIC_NOTE = ("<p><em>Interactive controls ({names}) appear here when this chapter runs in "
               "Jupyter (download it as .ipynb from the page header). The figure below is from a "
               "run this page made while it was built, with the settings its text gives, not "
               "necessarily the controls' defaults.</em></p>")


def show_controls(fn, *, run_button: bool, **sliders):
    """Display `sliders` (name -> ipywidgets control) that call `fn(**values)` into an output
    area: on every change, or when the Run button is pressed if `run_button` (for anything that
    takes more than a moment). Nothing runs until the reader acts."""
    output = widgets.Output()

    def call(_=None):
        output.clear_output(wait=True)
        with output:
            fn(**{name: slider.value for name, slider in sliders.items()})

    controls = list(sliders.values())
    if run_button:
        button = widgets.Button(description="Run", button_style="primary", icon="play")
        button.on_click(call)
        controls.append(button)
    else:
        for slider in sliders.values():
            slider.observe(call, names="value")
    box = widgets.VBox([widgets.HBox(controls, layout=widgets.Layout(flex_flow="row wrap")),
                        output])
    bundle = box._repr_mimebundle_()
    bundle["text/html"] = STATIC_NOTE.format(names=", ".join(sliders))
    bundle["text/plain"] = f"interactive controls: {', '.join(sliders)}"
    display(bundle, raw=True)
    return box
