"""The pure domain: deciders (decide/evolve) for every aggregate. Imports only the standard library."""
