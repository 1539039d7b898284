"""The operator's runtime: configuration, the services shared by every controller (the
composition root), the in-process bus, leader election, and the one loop skeleton both
controllers run on."""
