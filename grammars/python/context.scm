; Definitions that are worth showing to the model as context, and the scopes that contain them.
; Captures: @definition.<kind> on the whole definition, @name on its identifier.

(function_definition name: (identifier) @name) @definition.function
(class_definition name: (identifier) @name) @definition.class
(module (expression_statement (assignment left: (identifier) @name)) @definition.constant)
