"""Reading the exports: the data contract, the landing folder, encodings, readings of ticket fields, and staging
(parse, validate, quarantine, merge versions)."""
