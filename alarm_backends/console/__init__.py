"""The operators' console: the schedule, its entries' recent runs and their controls, behind Django's sign-in."""
