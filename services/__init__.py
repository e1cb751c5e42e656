"""Domain logic. Services take explicit arguments (the acting user included), use
the database session, and know nothing of the HTTP request.

One transaction per request or command: services add and flush, and never commit.
The view (or CLI command) commits once, right after its service calls and before
it answers::

    customer = customers.create_customer(actor(), data)
    customers.set_tags(actor(), customer, tag_ids)
    db.session.commit()

So several services make one transaction: saved together or not at all, one audit
trail, and one search index update (the backlog is applied after that commit).
What a request leaves uncommitted (an error half-way, a refusal) is rolled back
when its session ends. A service that refuses (DomainError) has changed nothing:
its checks come before its writes, and where a refusal can only come after a write
(a unique name taken meanwhile, a note's follow-up) it undoes its own part with a
savepoint. The one exception: a refused sign-in (accounts.authenticate) is counted,
and the view commits that before answering.
"""
