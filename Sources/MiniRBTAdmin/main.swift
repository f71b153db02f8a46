print("minirbt-admin: not yet implemented")
