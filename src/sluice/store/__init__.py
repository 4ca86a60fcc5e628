"""The store: the database engine, the unit of work, migrations, the models, and ``gateway_settings``' repository.

Every room keeps its own repository modules over these models; a service's operation is one unit of work
(:meth:`~sluice.store.db.Database.session`: committed when it ends normally, rolled back otherwise), and services
never commit themselves.

Imports nothing of Sluice's other rooms.
"""
