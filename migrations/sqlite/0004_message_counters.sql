-- Conversation turn counts and update times follow message inserts in the database itself,
-- so an append is a single statement (no read-modify-write in application code).
CREATE TRIGGER messages_bump_conversation
AFTER INSERT ON messages
BEGIN
    UPDATE conversations
       SET turn_count = turn_count + 1,
           updated_at = MAX(updated_at, NEW.created_at)
     WHERE id = NEW.conversation_id;
END;
