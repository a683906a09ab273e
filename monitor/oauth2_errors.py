"""Errors of OAuth2 sign-in, the stage that obtains an access token for a mailbox.

SourceError (monitor.source_errors)
 +-- OAuth2Error                   no access token could be obtained (with project and token URL)
      +-- TokenRequestRejected     the token endpoint returned an OAuth2 error (RFC 6749, 5.2)
      +-- TokenEndpointUnreachable no connection, a timeout, or a TLS failure
      +-- TokenResponseInvalid     the endpoint replied, but not with a token or an OAuth2 error
SecretError (config.errors)
 +-- ServiceAccountKeyInvalid      the key file is readable but is not a Google service-account key

A login that the IMAP server rejects is a LoginFailed, like a rejected password. No message or
attribute ever contains a secret or a token.
"""

from config.errors import SecretError
from monitor.source_errors import SourceError


class OAuth2Error(SourceError):
    """No access token could be obtained for a mailbox."""

    def __init__(self, message: str, *, project: str, token_url: str) -> None:
        super().__init__(message)
        self.project = project
        self.token_url = token_url


class TokenRequestRejected(OAuth2Error):
    """The token endpoint rejected the request; ``error_code`` is the provider's OAuth2 code.

    ``description`` is the provider's first line of explanation, which for Microsoft starts with
    an AADSTS code, and ``status`` the HTTP status of the reply.
    """

    def __init__(
        self,
        message: str,
        *,
        project: str,
        token_url: str,
        error_code: str,
        description: str,
        status: int,
    ) -> None:
        super().__init__(message, project=project, token_url=token_url)
        self.error_code = error_code
        self.description = description
        self.status = status


class TokenEndpointUnreachable(OAuth2Error):
    """The token endpoint could not be reached, timed out, or failed the TLS checks."""


class TokenResponseInvalid(OAuth2Error):
    """The token endpoint replied with something other than a token or an OAuth2 error."""


class ServiceAccountKeyInvalid(SecretError):
    """The service-account key file is not JSON, or lacks the email address or the private key."""
