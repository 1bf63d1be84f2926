"""CMS: the central's certificate authority (``/cms/v1``)."""
