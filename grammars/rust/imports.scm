; Imports of other modules. Captures: @import on the path of a `use`, @module on `mod name;`.

(use_declaration argument: (_) @import)
(mod_item name: (identifier) @module !body)
