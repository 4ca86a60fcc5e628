"""The Responses API's store: responses kept for retrieval and ``previous_response_id``, per workspace and owner.

Owns the ``stored_responses`` table (SQL in repository.py only) and the rules around it (service.py): who may see a
stored response, how long it is kept, how a conversation is rebuilt from a chain of them. May import the store's
models and the identity's Principal; the surfaces call it, never its repository.
"""
