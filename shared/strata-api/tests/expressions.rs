//! The expression parser and evaluator: known cases, and a property test
//! that random input never panics and always yields a ValidationException
//! or a valid result.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_api::expr::{
    apply_update, eval_condition, parse_condition, parse_projection, parse_update, project, Cond,
    Placeholders,
};
use strata_engine::{Item, Number, Value};

fn n(v: i64) -> Value {
    Value::N(Number::from_i64(v))
}

fn s(v: &str) -> Value {
    Value::S(v.to_string())
}

fn ph() -> Placeholders {
    let names = HashMap::from([
        ("#a".to_string(), "a".to_string()),
        ("#status".to_string(), "status".to_string()),
    ]);
    let values = HashMap::from([
        (":one".to_string(), n(1)),
        (":two".to_string(), n(2)),
        (":x".to_string(), s("x")),
        (":l".to_string(), Value::L(vec![n(9)])),
        (":ss".to_string(), Value::SS(vec!["p".into()])),
    ]);
    Placeholders::new(names, values)
}

fn item() -> Item {
    Item::from([
        ("a".to_string(), n(1)),
        ("status".to_string(), s("x")),
        (
            "m".to_string(),
            Value::M([("k".to_string(), Value::L(vec![n(1), n(2)]))].into()),
        ),
        ("l".to_string(), Value::L(vec![n(1), n(2), n(3)])),
        ("tags".to_string(), Value::SS(vec!["p".into(), "q".into()])),
    ])
}

fn holds(src: &str) -> bool {
    let c = parse_condition("ConditionExpression", src, &ph())
        .unwrap_or_else(|e| panic!("{src}: {}", e.message));
    eval_condition(&c, Some(&item()))
}

#[test]
fn conditions_follow_dynamodb_semantics_and_precedence() {
    assert!(holds("a = :one"));
    assert!(holds("#status = :x"));
    assert!(holds("m.k[1] = :two"));
    assert!(holds("a = :two OR a = :one AND #status = :x"));
    assert!(!holds("(a = :two OR a = :one) AND #status = :one"));
    assert!(holds("NOT a = :two"));
    assert!(holds("a BETWEEN :one AND :two"));
    assert!(holds("a IN (:two, :one)"));
    assert!(holds("size(l) > :two AND size(m) = :one"));
    assert!(holds("contains(tags, :ss) OR contains(l, :one)"));
    assert!(holds(
        "attribute_exists(m.k[0]) AND attribute_not_exists(m.k[5])"
    ));
    assert!(holds("nothing <> :one"));
    assert!(!holds("nothing = :one") && !holds("nothing < :one"));
    assert!(!holds("a < :x"), "different types never order");
}

#[test]
fn parse_errors_name_the_problem() {
    let err = |src: &str| {
        parse_condition("ConditionExpression", src, &ph())
            .unwrap_err()
            .message
    };
    assert!(err("status = :x").contains("reserved keyword; reserved keyword: status"));
    assert!(err("a = :nope").contains("attribute value: :nope"));
    assert!(err("#nope = :x").contains("attribute name: #nope"));
    assert!(err("a = ").contains("Syntax error; token: \"<EOF>\""));
    assert!(err("a = = :x").contains("near: \"= = :x\""));
    assert!(err("frob(a)").contains("Invalid function name; function: frob"));
    assert!(err("a BETWEEN :two AND :one").contains("lower bound operand: AttributeValue: {N:2}"));
    assert!(err(&"(".repeat(100)).contains("nested"));
    assert!(err(&format!("a = :one{}", " ".repeat(4096))).contains("Expression size has exceeded"));
    assert!(err("").contains("can not be empty"));
}

#[test]
fn updates_apply_against_the_item_as_it_was() {
    let p = ph();
    let actions = parse_update(
        "SET a = a + :one, b = a, l2 = list_append(l, :l) REMOVE l[0], m.k[1] ADD tags :ss, c :two",
        &p,
    )
    .unwrap();
    let out = apply_update(&actions, Some(&item())).unwrap().unwrap();
    assert_eq!(out["a"], n(2));
    assert_eq!(out["b"], n(1), "operands see the item before the update");
    assert_eq!(out["l2"], Value::L(vec![n(1), n(2), n(3), n(9)]));
    assert_eq!(out["l"], Value::L(vec![n(2), n(3)]));
    assert_eq!(
        out["m"],
        Value::M([("k".to_string(), Value::L(vec![n(1)]))].into())
    );
    assert_eq!(out["c"], n(2));
    assert!(parse_update("SET a = :one, a = :two", &p)
        .unwrap_err()
        .message
        .contains("overlap"));
    assert!(parse_update("SET l = :l REMOVE l[0]", &p)
        .unwrap_err()
        .message
        .contains("overlap"));
    // Removing from an absent item creates nothing; a nested path needs
    // its parent, in action order.
    let removes = parse_update("REMOVE a, b", &p).unwrap();
    assert_eq!(apply_update(&removes, None), Ok(None));
    let nested = parse_update("REMOVE nope.x", &p).unwrap();
    assert_eq!(
        apply_update(&nested, Some(&item())).unwrap_err(),
        "The document path provided in the update expression is invalid for update"
    );
    assert!(parse_update("SET a = :one SET b = :one", &p)
        .unwrap_err()
        .message
        .contains("only be used once"));
    assert!(parse_update("ADD a :x", &p)
        .unwrap_err()
        .message
        .contains("operand type"));
}

#[test]
fn projections_keep_structure() {
    let p = ph();
    let paths = parse_projection("m.k[1], l[2], l[0], #a", &p).unwrap();
    let out = project(&item(), &paths);
    assert_eq!(
        out["m"],
        Value::M([("k".to_string(), Value::L(vec![n(2)]))].into())
    );
    assert_eq!(out["l"], Value::L(vec![n(1), n(3)]));
    assert_eq!(out["a"], n(1));
    assert!(parse_projection("a, a.b", &p)
        .unwrap_err()
        .message
        .contains("overlap"));
}

const PIECES: &[&str] = &[
    "a",
    "#a",
    "#status",
    "#nope",
    ":one",
    ":two",
    ":x",
    ":l",
    ":nope",
    "m",
    "k",
    "l",
    "tags",
    "status",
    "(",
    ")",
    "[",
    "]",
    "[0]",
    "[99999999999999999999999]",
    ",",
    ".",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "AND",
    "OR",
    "NOT",
    "BETWEEN",
    "IN",
    "SET",
    "REMOVE",
    "ADD",
    "DELETE",
    "size",
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
    "if_not_exists",
    "list_append",
    "é",
    "\u{0}",
    "#",
    ":",
    "0",
    "1e5",
    "\"",
    "'",
    "🙂",
];

#[test]
fn random_input_never_panics_and_errors_are_validation_errors() {
    let mut rng = SmallRng::seed_from_u64(20261124);
    let target = item();
    for round in 0..30_000 {
        let len = rng.random_range(0..14);
        let mut src = String::new();
        for _ in 0..len {
            if rng.random_bool(0.05) {
                src.push(char::from(rng.random_range(0x20u8..0x7f)));
            } else {
                src.push_str(PIECES[rng.random_range(0..PIECES.len())]);
            }
            if rng.random_bool(0.7) {
                src.push(' ');
            }
        }
        let p = ph();
        let results = [
            parse_condition("ConditionExpression", &src, &p).map(|c| {
                eval_condition(&c, Some(&target));
                eval_condition(&c, None);
            }),
            parse_update(&src, &p).map(|a| {
                let _ = apply_update(&a, Some(&target));
                let _ = apply_update(&a, None);
            }),
            parse_projection(&src, &p).map(|paths| {
                project(&target, &paths);
            }),
        ];
        for r in results {
            if let Err(e) = r {
                assert_eq!(
                    e.code,
                    strata_api::ErrorCode::Validation,
                    "round {round}: {src:?} gave {e:?}"
                );
                assert!(!e.message.is_empty());
            }
        }
    }
}

#[test]
fn errors_come_in_dynamodb_order_and_words() {
    let p = ph();
    let msg = |r: Result<Cond, strata_api::ApiError>| r.unwrap_err().message;
    // A syntax error anywhere wins over an undefined placeholder before it.
    assert_eq!(
        msg(parse_condition("ConditionExpression", "a = :nope AND", &p)),
        "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"AND\""
    );
    assert_eq!(
        msg(parse_condition("ConditionExpression", "a = :nope", &p)),
        "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :nope"
    );
    // The text around a syntax error is quoted as written.
    assert_eq!(
        msg(parse_condition(
            "FilterExpression",
            "a <= #status ((a = :one))",
            &p
        )),
        "Invalid FilterExpression: Syntax error; token: \"(\", near: \"#status ((\""
    );
    assert_eq!(
        msg(parse_condition("FilterExpression", "begins_with(a, :x) = :x", &p)),
        "Invalid FilterExpression: The function is not allowed to be used this way in an expression; function: begins_with"
    );
    for (src, op) in [
        ("a = a", "="),
        ("a BETWEEN :one AND a", "BETWEEN"),
        ("a IN (:one, a)", "IN"),
    ] {
        assert_eq!(
            msg(parse_condition("ConditionExpression", src, &p)),
            format!("Invalid ConditionExpression: The first operand must be distinct from the remaining operands for this operator or function; operator: {op}, first operand: [a]")
        );
    }
    assert!(msg(parse_condition(
        "ConditionExpression",
        "a BETWEEN :x AND :one",
        &p
    ))
    .contains("requires same data type for lower and upper bounds"));
    // ADD and DELETE operand types: a DELETE's first, in DynamoDB's words.
    assert_eq!(
        parse_update("ADD a :x DELETE b :one", &p).unwrap_err().message,
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER, typeSet: ALLOWED_FOR_DELETE_OPERAND"
    );
    // A bad list index, then overlapping paths, then operand types.
    assert!(parse_update("SET l[0] = :one, l[99999999999] = :two", &p)
        .unwrap_err()
        .message
        .contains("List index is not within the allowable range; index: [99999999999]"));
    assert!(parse_update("ADD a :x DELETE a :ss", &p)
        .unwrap_err()
        .message
        .contains("Two document paths overlap"));
    assert_eq!(
        parse_update("ADD a :nope", &p).unwrap_err().message,
        "Invalid UpdateExpression: An expression attribute value used in expression is not defined; attribute value: :nope"
    );
}
