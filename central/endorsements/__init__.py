"""The endorsement trust store (/hvs/v2/endorsement-cas, /hvs/v2/tpm-endorsements): the EKs the Privacy CA accepts."""
