"""Routing: from scored turns to one explainable decision and a handoff context.

Pure functions and data, no I/O and no model code. One module per concept:

* ``types``: the inputs (``TurnScores``, ``CustomerInfo``) and the routes.
* ``signals``: ``ConversationSignals``, updated turn by turn in O(1).
* ``phrases``: escalation phrasing (a person, churn, legal, complaint).
* ``churn``: the churn-risk heuristic.
* ``facts``: the signal vocabulary a policy can test, and its values.
* ``conditions``: the condition language (data, never ``eval``).
* ``policy``: the TOML policy and the default policy (data in ``policy_schema``, validation in
  ``policy_loader``).
* ``reasons``: custom contact reasons (the reasons file) and how a match joins the intent head.
* ``experiments``: stable variant assignment.
* ``decision``: ``decide`` and the explanation.
* ``context``: the handoff context for the human.
* ``redact``: PII redaction with typed placeholders.
* ``replay``: a transcript turn by turn, each decision made with the one before.
* ``suite``: policy test suites (labelled conversations and the decisions they must get).
* ``errors``: the one error hierarchy of this layer.

Nothing is imported here, so ``import routing.taxonomy`` stays cheap.
See ``routing/POLICY.md`` for the policy language, ``routing/REASONS.md`` for reasons files.
"""
