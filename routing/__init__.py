"""Routing: from scored turns to one explainable decision and a handoff context.

Pure functions and data, no I/O and no model code. One module per concept:

* ``types``: the inputs (``TurnScores``, ``CustomerInfo``) and the routes.
* ``signals``: ``ConversationSignals``, updated turn by turn in O(1).
* ``phrases``: escalation phrasing (a person, churn, legal, complaint).
* ``churn``: the churn-risk heuristic.
* ``facts``: the signal vocabulary a policy can test, and its values.
* ``conditions``: the condition language (data, never ``eval``).
* ``policy``: loading and validating the TOML policy; the default policy.
* ``reasons``: custom contact reasons (the reasons file) and how a match joins the intent head.
* ``experiments``: stable variant assignment.
* ``decision``: ``decide`` and the explanation.
* ``context``: the handoff context for the human.
* ``redact``: PII redaction with typed placeholders.
* ``replay``: a whole transcript in one call, or turn by turn with each previous decision.
* ``suite``: policy test suites (labelled conversations and the decisions they must get).
* ``errors``: the one error hierarchy of this layer.

Nothing is imported here, so ``import routing.taxonomy`` stays cheap.
See ``routing/POLICY.md`` for the policy language, ``routing/REASONS.md`` for reasons files.
"""
