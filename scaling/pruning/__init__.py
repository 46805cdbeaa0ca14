"""The month-end prune (SPEC §7): the rule (`rule`), every pool's plan (`plans`, shared by the preview,
the dry run and the real run), the once-a-month pass (`run`) and the account's bill (`bill`)."""
