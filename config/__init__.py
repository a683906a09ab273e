"""Settings, database engine, logging and translations: the layer every other package builds on."""
