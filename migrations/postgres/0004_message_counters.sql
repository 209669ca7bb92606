-- Conversation turn counts and update times follow message inserts in the database itself,
-- so an append needs no read-modify-write in application code.
CREATE FUNCTION messages_bump_conversation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations
       SET turn_count = turn_count + 1,
           updated_at = GREATEST(updated_at, NEW.created_at)
     WHERE id = NEW.conversation_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER messages_bump_conversation
AFTER INSERT ON messages
FOR EACH ROW EXECUTE FUNCTION messages_bump_conversation();
