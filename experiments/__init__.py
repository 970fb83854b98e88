"""MLflow-tracked experiments: training, paired evaluation, promotion, confidence thresholds
and tuning. The only package (with model loading) that imports MLflow.

==========================  ==================================================================
:mod:`.config`              frozen, validated configs; YAML per algorithm in ``configs/``
:mod:`.tracking`            tracking URI and runs; the SB3 ``KVWriter`` that streams to MLflow
:mod:`.algorithms`          what ``--algo`` accepts and how each family trains
:mod:`.train`               ``autopilot train``: one run per training, model registered
:mod:`.evaluate`            ``autopilot evaluate``: paired evaluation of several policies
:mod:`.promote`             ``autopilot promote``: champion/challenger on paired evidence
:mod:`.thresholds`          ``autopilot thresholds``: per-action confidence thresholds file
:mod:`.tune`                ``autopilot tune``: Optuna with pruning, trials as nested runs
:mod:`.pyfunc`              the pyfunc model (KPI observation in; decision out)
:mod:`.models`              registry aliases and ``load_policy_uri`` for any model URI
==========================  ==================================================================
"""
