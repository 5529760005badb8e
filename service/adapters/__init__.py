"""Platform adapters (Twilio Voice, Twilio Conversations, Chatwoot, generic signed webhook) and the
decision-callback outbox. Each adapter only verifies, decodes and hands turns to the shared
``ConversationService``; see ``routes`` for the HTTP side and ``outbox`` for callbacks.
"""
