"""The Privacy CA (/hvs/v2/privacyca): AIK certification through MakeCredential / ActivateCredential."""
