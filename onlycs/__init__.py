"""OnlyCS Python client: `Client(base_url, api_key).with_personality(...).send(user, text)`."""

from onlycs._wire import Reply
from onlycs.async_client import AsyncClient
from onlycs.client import Client
from onlycs.errors import (
                           APIConnectionError,
                           APIStatusError,
                           APITimeoutError,
                           AuthenticationError,
                           BadRequestError,
                           InternalServerError,
                           NotFoundError,
                           OnlyCSError,
                           OverloadedError,
                           PermissionDeniedError,
                           RateLimitError,
)

__all__ = ["APIConnectionError", "APIStatusError", "APITimeoutError", "AsyncClient",
           "AuthenticationError", "BadRequestError", "Client", "InternalServerError",
           "NotFoundError", "OnlyCSError", "OverloadedError", "PermissionDeniedError",
           "RateLimitError", "Reply"]
