"""Clean-path verifier: does a zone's traffic cross only trusted equipment?

The pipeline, one stage per module or package::

    capture/ -> decode -> flows -> attribution/ -> policy/ -> sinks/

``pipeline`` wires the stages; ``cli`` is the click front end.
"""

__version__ = "0.1.0"
