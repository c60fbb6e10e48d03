"""Open-VCLIP's prompt "Set": 28 class-text templates, used by the Set strategy and by the peers whose own
zero-shot evaluation reads them (Open-VCLIP, FROSTER, MoTE). A module of its own, with no imports, so the model
code can read them without depending on the prompt bank."""

SET_PREFIXES = ("a photo of", "a video of", "a example of", "a demonstration of")
SET_FORMS = ("{}", "a person {}", "a person using {}", "a person doing {}", "a person during {}",
             "a person performing {}", "a person practicing {}")
# Open-VCLIP's 28 templates, e.g. "a video of a person doing {}."
SET_TEMPLATES = tuple(f"{prefix} {form}." for prefix in SET_PREFIXES for form in SET_FORMS)
